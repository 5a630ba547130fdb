package identity

// The phones on sale: which models the simulated handsets are, and which serials they carry.

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/vigie/vigie/pkg/reference"
)

// Use says who carries a phone, which decides the mix of models: contraband phones include
// more cheap no-name handsets and a few mini phones than the phones of staff and visitors.
type Use int

// Uses of a phone.
const (
	// Personal phones: staff and visitors.
	Personal Use = iota
	// Contraband phones, hidden in the cells.
	Contraband
)

// makers are the mass-market manufacturers with a rough share of the handsets in use in
// France (a Zipf-like ranking: the leaders, then a long tail), feature phones included.
// Only the ones the reference knows are used; their shares are renormalised.
var makers = []struct {
	name  string
	share float64
}{
	{"Samsung", 24}, {"Apple", 20}, {"Huawei", 9}, {"Xiaomi", 8}, {"Nokia", 7}, {"Alcatel", 5},
	{"Motorola", 4}, {"LG", 3.5}, {"Sony", 3}, {"Wiko", 2.5}, {"Honor", 1.5}, {"Oppo", 1.5},
	{"Google", 1}, {"OnePlus", 1}, {"ZTE", 1}, {"TCL", 1}, {"Lenovo", 0.8}, {"HTC", 0.8},
	{"Sony Ericsson", 0.6}, {"BlackBerry", 0.5}, {"Asus", 0.5}, {"Meizu", 0.3}, {"Sagem", 0.3},
	{"Siemens", 0.2},
}

// Shares of the cheap no-name handsets and of the mini phones per use.
const (
	noNameContraband = 0.06
	noNamePersonal   = 0.01
	miniContraband   = 0.005
	// modelsPerMaker is how many models of a manufacturer are on sale at once.
	modelsPerMaker = 40
	// tacsPerModel is how many TACs (variants) of a model are drawn from.
	tacsPerModel = 6
	// inventedNoName is the number of no-name TACs the reference does not know.
	inventedNoName = 40
)

// notHandsets are makers of the reference whose TACs are modems and modules, not phones.
var notHandsets = map[string]bool{"quectel": true, "simcom": true, "tp-link": true, "telit": true, "sierra wireless": true, "u-blox": true, "huawei technologies": true}

// recentLooking are model names of the smartphone era: such models are more popular than
// the older handsets of the same manufacturer (the reference holds no dates).
var recentLooking = regexp.MustCompile(`(?i)^(SM-|Galaxy|iPhone ?([6-9]|X|1[0-9]|SE)|Xperia|Lumia|Moto|Redmi|Mi |Pixel|Nexus|Blade|One ?Touch|Pixi|Ascend|[A-Z]{3}-[LU][0-9]{2}$)`)

// tacModel is one drawable TAC and the production of its serials.
type tacModel struct {
	tac string
	// firstBlock is the block (first 3 serial digits) produced at day 0; block advances one
	// every period days, and lots consecutive blocks are on sale at once.
	firstBlock int
	period     float64
	lots       int
}

// Catalogue is the phones on sale: hundreds of mass-market models of the reference TAC table,
// each drawn with a plausible popularity (a Zipf-like share per manufacturer, then per model
// within it, recent-looking models first; each model's TACs with decreasing shares), a small
// share of cheap no-name models, a few mini phones among contraband. Serial numbers cluster as
// real ones do: a TAC's handsets come from a handful of production blocks (the first three
// serial digits) that rotate slowly. It is immutable and safe for concurrent use.
type Catalogue struct {
	tacs  []tacModel
	byTAC map[string]int
	// cum holds the cumulative weights of tacs, per use.
	cum [2][]float64
	// rare are reference TACs of known models the background never draws.
	rare []string
	// unknown are TACs the reference does not know and the background never draws.
	unknown []string
	// popular lists the indexes of tacs by decreasing weight, per use.
	popular [2][]int
	models  int
}

// NewCatalogue builds the catalogue from the reference models. reserved TACs (those of
// planted scenarios) are never drawn. It is deterministic: the same models give the same
// catalogue.
func NewCatalogue(models []*reference.Model, reserved []string) *Catalogue {
	known := map[string]bool{}
	byMaker := map[string]map[string][]string{}
	var noName, minis []string
	share := map[string]float64{}
	for _, m := range makers {
		share[strings.ToLower(m.name)] = m.share
	}
	for _, m := range models {
		known[m.TAC] = true
		if slices.Contains(reserved, m.TAC) {
			continue
		}
		if m.Mini {
			minis = append(minis, m.TAC)
			continue
		}
		if !strings.HasPrefix(m.TAC, "35") && !strings.HasPrefix(m.TAC, "86") {
			continue // older reporting bodies and CDMA: handsets of another era or continent
		}
		name, maker := strings.TrimSpace(m.Model), strings.ToLower(m.Manufacturer)
		if share[maker] == 0 {
			if strings.HasPrefix(m.TAC, "86") && !notHandsets[maker] {
				noName = append(noName, m.TAC) // a Chinese maker of cheap handsets
			}
			continue
		}
		if name == "" || strings.EqualFold(name, "unknown") {
			continue
		}
		if byMaker[maker] == nil {
			byMaker[maker] = map[string][]string{}
		}
		byMaker[maker][name] = append(byMaker[maker][name], m.TAC)
	}
	c := &Catalogue{byTAC: map[string]int{}}
	var personal, contraband []float64
	add := func(tm tacModel, wp, wc float64) {
		c.byTAC[tm.tac] = len(c.tacs)
		c.tacs = append(c.tacs, tm)
		personal, contraband = append(personal, wp), append(contraband, wc)
	}
	total := 0.0
	for _, mk := range makers {
		if len(byMaker[strings.ToLower(mk.name)]) > 0 {
			total += mk.share
		}
	}
	for _, mk := range makers {
		maker := strings.ToLower(mk.name)
		ms := byMaker[maker]
		if len(ms) == 0 {
			continue
		}
		names := make([]string, 0, len(ms))
		for n := range ms {
			names = append(names, n)
		}
		// Recent-looking models first, then those with many TACs (sold in many variants).
		recent := map[string]bool{}
		for _, n := range names {
			recent[n] = recentLooking.MatchString(n) || strings.HasPrefix(slices.Max(ms[n]), "86")
		}
		sort.SliceStable(names, func(i, j int) bool {
			if ri, rj := recent[names[i]], recent[names[j]]; ri != rj {
				return ri
			}
			if ni, nj := len(ms[names[i]]), len(ms[names[j]]); ni != nj {
				return ni > nj
			}
			return names[i] < names[j]
		})
		for _, n := range names[min(len(names), modelsPerMaker):] {
			c.rare = append(c.rare, slices.Min(ms[n]))
		}
		names = names[:min(len(names), modelsPerMaker)]
		mw := zipf(len(names), 1)
		for i, n := range names {
			tacs := slices.Clone(ms[n])
			slices.Sort(tacs)
			slices.Reverse(tacs)
			if len(tacs) > tacsPerModel {
				tacs = tacs[:tacsPerModel]
			}
			tw := zipf(len(tacs), 1)
			for j, t := range tacs {
				w := share[maker] / total * mw[i] * tw[j]
				add(production(t), w, w)
			}
			c.models++
		}
	}
	// Cheap no-name handsets: Chinese makers of the reference and TACs it does not know.
	slices.Sort(noName)
	for i := 0; len(c.unknown) < inventedNoName+8; i++ {
		t := fmt.Sprintf("86%06d", hash64(fmt.Sprintf("no-name/%d", i))%1_000_000)
		if !known[t] && !slices.Contains(reserved, t) && !slices.Contains(c.unknown, t) {
			c.unknown = append(c.unknown, t)
		}
	}
	// The last eight unknown TACs are kept for planted patterns (Unknown).
	pool := append(slices.Clone(noName), c.unknown[:inventedNoName]...)
	c.unknown = c.unknown[inventedNoName:]
	nw := zipf(len(pool), 0.5)
	for i, t := range pool {
		add(production(t), (noNamePersonal/(1-noNamePersonal))*nw[i], (noNameContraband/(1-noNameContraband-miniContraband))*nw[i])
	}
	for _, t := range minis {
		add(production(t), 0, (miniContraband/(1-noNameContraband-miniContraband))/float64(len(minis)))
	}
	c.models += len(pool) + len(minis)
	for use, ws := range [][]float64{personal, contraband} {
		acc := 0.0
		c.cum[use] = make([]float64, len(ws))
		c.popular[use] = make([]int, len(ws))
		for i, w := range ws {
			acc += w
			c.cum[use][i] = acc
			c.popular[use][i] = i
		}
		sort.SliceStable(c.popular[use], func(a, b int) bool { return ws[c.popular[use][a]] > ws[c.popular[use][b]] })
	}
	slices.Sort(c.rare)
	return c
}

// zipf returns n weights proportional to 1/(rank+1)^s that sum to 1.
func zipf(n int, s float64) []float64 {
	w := make([]float64, n)
	sum := 0.0
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// production decides, from the TAC alone, how its serials are made: the block produced at
// day 0, the days each block lasts (20 to 80) and the lots on sale at once (2 to 5).
func production(tac string) tacModel {
	h := hash64("serials/" + tac)
	return tacModel{tac: tac, firstBlock: int(h % 1000), period: float64(20 + (h>>10)%61), lots: 2 + int((h>>20)%4)}
}

// Models is the number of distinct models the catalogue draws from.
func (c *Catalogue) Models() int { return c.models }

// TACs is the number of TACs the catalogue draws from.
func (c *Catalogue) TACs() int { return len(c.tacs) }

// Draw returns the TAC of a new phone of this use.
func (c *Catalogue) Draw(rng *rand.Rand, use Use) string {
	cum := c.cum[use]
	x := rng.Float64() * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, x)
	return c.tacs[min(i, len(cum)-1)].tac
}

// Popular returns one of the n most popular TACs of this use: an ordinary model, already
// everywhere.
func (c *Catalogue) Popular(rng *rand.Rand, use Use, n int) string {
	idx := c.popular[use]
	return c.tacs[idx[rng.IntN(min(n, len(idx)))]].tac
}

// Drawable reports whether the background may draw this TAC.
func (c *Catalogue) Drawable(tac string) bool {
	_, ok := c.byTAC[tac]
	return ok
}

// Rare returns the i-th reference TAC of a known model that the catalogue never draws (a
// model sold too little to be on sale here), for planted patterns.
func (c *Catalogue) Rare(i int) string { return c.rare[i%len(c.rare)] }

// Unknown returns the i-th TAC (of 8) that neither the reference nor the catalogue knows.
func (c *Catalogue) Unknown(i int) string { return c.unknown[i%len(c.unknown)] }

// Block returns the serial block (0 to 999) of a handset of the TAC made on day (days from
// the simulation's start, negative before it): one of the TAC's lots on sale then.
func (c *Catalogue) Block(rng *rand.Rand, tac string, day float64) int {
	i, ok := c.byTAC[tac]
	if !ok {
		tm := production(tac)
		return tm.block(rng, day)
	}
	return c.tacs[i].block(rng, day)
}

func (tm tacModel) block(rng *rand.Rand, day float64) int {
	cur := tm.firstBlock + int(math.Floor(day/tm.period))
	return ((cur+rng.IntN(tm.lots))%1000 + 1000) % 1000
}
