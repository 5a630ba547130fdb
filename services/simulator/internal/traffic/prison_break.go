package traffic

// The 2025 case: one supplier's mini-phones spread over many facilities in serial blocks.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// prisonBreak replays the 2025 case: one supplier's mini phones, of a few TACs in narrow
// serial blocks, enter through the visiting rooms and spread to many facilities over weeks,
// until a coordinated search of every facility at once seizes some of them.
type prisonBreak struct {
	facilities []*world.Facility
	infected   []time.Time
	operation  time.Time
}

// supplierBlocks are the supplier's models: a TAC, the first serial of its block and its share.
// 35828802 (AIEK V8) and 86741801 (GTStar BM50) are mini phones of the reference data;
// 86935104 is a model the reference does not know, as most mini phones of the case.
var supplierBlocks = []struct {
	tac    string
	serial int
	share  float64
}{{"35828802", 417000, 0.40}, {"86741801", 230000, 0.36}, {"86935104", 880000, 0.24}}

func (s *prisonBreak) name() string { return ScenarioPrisonBreak }

func (s *prisonBreak) plan(g *Generator, rng *rand.Rand) error {
	n := g.opt.SupplierFacilities
	mas := g.shuffled("prison-break", withMAS)
	others := g.shuffled("prison-break", func(f *world.Facility) bool { return !withMAS(f) && f.Search != nil })
	nMAS := min(len(mas), int(math.Round(float64(n)*52/66)))
	if nMAS+len(others) < n {
		nMAS = min(len(mas), n-len(others))
	}
	if nMAS+len(others) < n || nMAS < 3 {
		return fmt.Errorf("the reference has %d facilities with a MAS and %d without, %d needed", len(mas), len(others), n)
	}
	fs := append(slices.Clone(mas[:nMAS]), others[:n-nMAS]...)
	// The spread starts at three MAS facilities and reaches every facility by 75% of the period.
	rng.Shuffle(len(fs)-3, func(i, j int) { fs[i+3], fs[j+3] = fs[j+3], fs[i+3] })
	s.facilities = fs
	span := g.end.Sub(g.start)
	for k := range fs {
		frac := 0.07 + 0.68*float64(k)/float64(n)
		s.infected = append(s.infected, g.start.Add(time.Duration(frac*float64(span))).Truncate(time.Hour))
	}
	s.operation = g.at(0.95, 5*time.Hour)
	if s.operation.Before(s.infected[n-1].Add(24 * time.Hour)) {
		return errors.New("the period is too short for the spread and the search")
	}

	var weights []float64
	total := 0.0
	for _, f := range fs {
		weights = append(weights, f.Size)
		total += f.Size
	}
	lastArrival := g.at(0.93, 0)
	var tacs, prefixes, sample []string
	placed := 0
	for bi, b := range supplierBlocks {
		count := int(math.Round(b.share * float64(g.opt.SupplierPhones)))
		if bi == len(supplierBlocks)-1 {
			count = g.opt.SupplierPhones - placed
		}
		tacs = append(tacs, b.tac)
		for i := range count {
			// Every facility gets two phones first, the rest goes by facility size.
			k := (placed + i) / 2
			if k >= len(fs) {
				k = pickWeighted(rng, weights, total)
			}
			f := fs[k]
			from := s.infected[k].Add(time.Duration(math.Pow(rng.Float64(), 1.5) * float64(lastArrival.Sub(s.infected[k]))))
			zone := f.CellZones[rng.IntN(len(f.CellZones))]
			if mz := f.MASZones(); len(mz) > 0 {
				zone = mz[rng.IntN(len(mz))]
			}
			p := g.plantedPhone(rng, b.tac, b.serial+i, 1+rng.Float64()*2, f, zone, from.Add(2*time.Hour), g.end)
			p.mini, p.rat, p.seizable = true, event.RAT2G, true
			if f.MAS["visiting"] != nil {
				// Smuggled in at a visit: first seen in the visiting room.
				p.stays = append([]stay{{fac: f, zone: "visiting", from: from, to: from.Add(40 * time.Minute)}}, p.stays...)
			}
			prefix := fmt.Sprintf("%03d", (b.serial+i)/1000)
			if !slices.Contains(prefixes, prefix) {
				prefixes = append(prefixes, prefix)
			}
			if i < 3 {
				sample = append(sample, p.imei)
			}
		}
		placed += count
	}
	g.truth.Findings = append(g.truth.Findings, Finding{
		Scenario:       ScenarioPrisonBreak,
		Rule:           "TAC_SPREAD",
		Facilities:     ids(fs),
		TACs:           tacs,
		SerialPrefixes: prefixes,
		IMEIs:          sample,
		Devices:        g.opt.SupplierPhones,
		At:             s.infected[0],
		Summary: fmt.Sprintf("%d mini phones of TACs %s (serial blocks %s) spread from %s to %d facilities by %s; coordinated search on %s",
			g.opt.SupplierPhones, strings.Join(tacs, ", "), strings.Join(prefixes, ", "), s.infected[0].Format("2006-01-02"), n,
			s.infected[n-1].Format("2006-01-02"), s.operation.Format("2006-01-02 15:04")),
	})
	return nil
}

func pickWeighted(rng *rand.Rand, w []float64, total float64) int {
	x := rng.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func (s *prisonBreak) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	if g.dayOf(s.operation) != d {
		return
	}
	// Opération Prison Break: every facility searched at once, one search id.
	for i, f := range s.facilities {
		t := s.operation.Add(time.Duration(i%30) * time.Minute)
		zones := map[string]bool{}
		for _, p := range g.phones {
			if st := p.current(t); p.mini && p.planted && st != nil && st.fac == f {
				zones[st.zone] = true
			}
		}
		if len(zones) == 0 {
			zones[f.CellZones[0]] = true
		}
		zs := make([]string, 0, len(zones))
		for z := range zones {
			zs = append(zs, z)
		}
		slices.Sort(zs)
		spec := searchSpec{id: "op-prison-break-2025", find: 0.12, read: 0.7, foundBy: "cell_search"}
		if !withMAS(f) {
			// Without a MAS the search is the only sight of the phones: staff dig deeper and
			// read every phone they find.
			spec.find, spec.read, spec.minFound = 0.4, 1, 1
		}
		for _, z := range zs {
			g.search(f, z, t, spec, rng, emit)
		}
	}
}

// ---- inmate-transfer ---------------------------------------------------------------------
