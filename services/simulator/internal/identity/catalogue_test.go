package identity

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/reference"
	refdata "github.com/vigie/vigie/schemas/reference"
)

func TestCatalogue(t *testing.T) {
	snap, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	reserved := []string{"35828802", "86741801"}
	c := NewCatalogue(snap.Models(), reserved)
	require.True(t, reflect.DeepEqual(c, NewCatalogue(snap.Models(), reserved)), "deterministic")
	require.Greater(t, c.Models(), 300, "hundreds of models")
	t.Logf("%d models, %d TACs", c.Models(), c.TACs())

	rng := rand.New(rand.NewPCG(1, 2))
	const n = 50_000
	for _, use := range []Use{Personal, Contraband} {
		byTAC, byMaker := map[string]int{}, map[string]int{}
		unknown, mini := 0, 0
		for range n {
			tac := c.Draw(rng, use)
			require.NotContains(t, reserved, tac)
			byTAC[tac]++
			m, ok := snap.Model(tac)
			switch {
			case !ok:
				unknown++
				byMaker["(unknown)"]++
			case m.Mini:
				mini++
				byMaker[m.Manufacturer]++
			default:
				byMaker[m.Manufacturer]++
			}
		}
		tacs := make([]string, 0, len(byTAC))
		for tac := range byTAC {
			tacs = append(tacs, tac)
		}
		sort.Slice(tacs, func(i, j int) bool { return byTAC[tacs[i]] > byTAC[tacs[j]] })
		top := float64(byTAC[tacs[0]]) / n
		// A popular model is common, no single TAC dominates, and the tail is long.
		require.Greater(t, top, 0.004, "use %d", use)
		require.Less(t, top, 0.03, "use %d", use)
		require.Greater(t, len(byTAC), 700, "use %d", use)
		// Samsung and Apple lead.
		require.Greater(t, byMaker["Samsung"], byMaker["Nokia"])
		require.Greater(t, byMaker["Apple"], byMaker["LG"])
		if use == Contraband {
			require.InDelta(t, 0.005, float64(mini)/n, 0.002, "mini phones among contraband")
			require.Positive(t, unknown, "no-name TACs unknown to the reference")
		} else {
			require.Zero(t, mini, "no mini phone among staff and visitors")
		}
		var head []string
		for _, tac := range tacs[:8] {
			m, _ := snap.Model(tac)
			head = append(head, tac+" "+m.Manufacturer+" "+m.Model)
		}
		t.Logf("use %d: %d TACs drawn, top %.2f%%: %v; per maker %v", use, len(byTAC), 100*top, head, byMaker)
	}

	// Rare and unknown TACs are never drawn.
	for i := range 8 {
		require.False(t, c.Drawable(c.Rare(i)))
		_, ok := snap.Model(c.Rare(i))
		require.True(t, ok)
		require.False(t, c.Drawable(c.Unknown(i)))
		_, ok = snap.Model(c.Unknown(i))
		require.False(t, ok)
	}

	// Serials cluster in a few blocks that rotate slowly.
	tac := c.Popular(rng, Personal, 1)
	blocks := map[int]int{}
	for range 1000 {
		blocks[c.Block(rng, tac, 10)]++
	}
	require.LessOrEqual(t, len(blocks), 5)
	later := map[int]int{}
	for range 1000 {
		later[c.Block(rng, tac, 400)]++
	}
	for b := range later {
		require.NotContains(t, blocks, b, "blocks a year apart differ")
	}
}
