package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// The entries an engine counts (what StateConfig.MaxEntries bounds) are the entries its
// state holds, through observation, eviction sweeps and sheds, for every rule type.
func TestEntriesCountWhatTheStateHolds(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	for _, r := range rs {
		if r.ID == "DEVICE_MULTI_SITE" {
			burst := *r
			burst.ID, burst.Type, burst.Threshold, burst.Window, burst.Distinct = "ATTEMPT_BURST", rules.EventCount, 4, 24*time.Hour, nil
			rs = append(rs, &burst)
			break
		}
	}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 37, "n")
	es, _ := g.Background(start, 20, 8, 40, 4)
	for _, p := range []scenario.Planted{g.ManySIMs(g.Facility(1), start.Add(3*24*time.Hour), 400, time.Minute),
		g.SeizedResurrection(g.Facility(2), start.Add(5*24*time.Hour)), g.ImpossibleTravel(start.Add(6 * 24 * time.Hour)),
		g.MultiSite(g.Facility(3), g.Facility(4), start.Add(7*24*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	for _, budget := range []int{1000, 1_000_000} {
		cfg := DefaultEngineConfig()
		cfg.State = StateConfig{MaxValues: 8, MaxEvents: 10, MaxEntries: budget}
		eng := NewEngineConfig(rs, ref, cfg)
		recount := func() int {
			n := 0
			for _, d := range eng.devices {
				_, size := d.age()
				n += size
			}
			return n
		}
		var out []alert.Alert
		for i := range es {
			out = eng.Observe(&es[i], true, out[:0])
			if i%50 == 0 {
				require.Equal(t, recount(), eng.Entries(), "budget %d, event %d", budget, i)
			}
			require.LessOrEqual(t, eng.Entries(), budget)
		}
		require.Equal(t, recount(), eng.Entries())
		if st := eng.Stats(); budget == 1000 {
			require.NotZero(t, st.Sheds, "sheds ran (each after a sweep)")
		} else {
			require.Zero(t, st.Sheds)
			require.NotZero(t, st.Evicted, "sweeps evicted devices")
		}
	}
}
