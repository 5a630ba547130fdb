package traffic

// The 2025 case: one supplier's mini-phones spread over many facilities in serial blocks, and
// the near misses of the model rules: a rare model reaching four new facilities, a block of
// four devices, a new model at a second facility nine days after the first.

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
// serial blocks, enter through the visiting rooms and spread to many facilities within
// days, after the 28 days of history the model rules need, until a coordinated search of
// every facility at once seizes some of them.
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

// supplierTACs are the supplier's TACs, which the background never draws.
func supplierTACs() []string {
	var out []string
	for _, b := range supplierBlocks {
		out = append(out, b.tac)
	}
	return out
}

func (s *prisonBreak) name() string { return ScenarioPrisonBreak }

// seen is when a planted TAC is first seen at a facility, and in which serial block.
type seen struct {
	tac, block string
	fac        *world.Facility
	at         time.Time
}

func (s *prisonBreak) plan(g *Generator, rng *rand.Rand) error {
	n := g.opt.SupplierFacilities
	// Not where a drone drop is planted: new phones by the dozen are what such a facility
	// would usually get then, and the drop's would not stand out.
	mas := g.shuffled("prison-break", func(f *world.Facility) bool {
		return withMAS(f) && !slices.Contains(g.taken[RuleDroneThenNewDevice], f)
	})
	others := g.shuffled("prison-break", func(f *world.Facility) bool { return !withMAS(f) && f.Search != nil })
	nMAS := min(len(mas), int(math.Round(float64(n)*52/66)))
	if nMAS+len(others) < n {
		nMAS = min(len(mas), n-len(others))
	}
	if nMAS+len(others) < n || nMAS < 3 {
		return fmt.Errorf("the reference has %d facilities with a MAS and %d without, %d needed", len(mas), len(others), n)
	}
	fs := append(slices.Clone(mas[:nMAS]), others[:n-nMAS]...)
	// The spread starts at three MAS facilities.
	rng.Shuffle(len(fs)-3, func(i, j int) { fs[i+3], fs[j+3] = fs[j+3], fs[i+3] })
	s.facilities = fs

	// After 28 days of history, every facility reached within days (nine in a 42-day period),
	// the search two days before the end; in a period too short for that (under 33 days),
	// from 7 % to 75 % of it.
	s.operation = g.end.Add(-2*day + 5*time.Hour)
	from, to := g.start.Add(warmUp*day), s.operation.Add(-2*day)
	if to.Before(from.Add(day)) {
		span := g.end.Sub(g.start)
		from, to = g.start.Add(time.Duration(0.07*float64(span))), g.start.Add(time.Duration(0.75*float64(span)))
		s.operation = g.at(0.95, 5*time.Hour)
	}
	lastArrival := s.operation.Add(-30 * time.Hour)
	for k, f := range fs {
		at := g.visitTime(f, from.Add(time.Duration(float64(to.Sub(from))*float64(k)/float64(n))), rng)
		// In a short period the next visiting day may come too late: the day before the search.
		s.infected = append(s.infected, minTime(at, s.operation.Add(-20*time.Hour)))
	}
	if !from.Before(s.operation.Add(-20 * time.Hour)) {
		return errors.New("the period is too short for the spread and the search")
	}

	var weights []float64
	total := 0.0
	for _, f := range fs {
		weights = append(weights, f.Size)
		total += f.Size
	}
	var tacs, prefixes, sample []string
	var sights []seen
	placed := 0
	first := map[*world.Facility]bool{}
	for bi, b := range supplierBlocks {
		count := int(math.Round(b.share * float64(g.opt.SupplierPhones)))
		if bi == len(supplierBlocks)-1 {
			count = g.opt.SupplierPhones - placed
		}
		tacs = append(tacs, b.tac)
		for i := range count {
			// Every facility gets two phones first, the rest goes by facility size; a
			// facility's first phone arrives when it is reached, the others later, at visits.
			k := (placed + i) / 2
			if k >= len(fs) {
				k = pickWeighted(rng, weights, total)
			}
			f := fs[k]
			arrive := s.infected[k]
			if first[f] {
				later := time.Duration(math.Pow(rng.Float64(), 1.5) * float64(max(0, lastArrival.Sub(s.infected[k]))))
				arrive = g.visitTime(f, s.infected[k].Add(later), rng)
			}
			first[f] = true
			p := g.newPhone(rng, b.tac, 0, 1+rng.Float64()*2, profileNight)
			delete(g.usedIMEI, p.imei)
			p.imei = g.newIMEI(rng, b.tac, -1, b.serial+i)
			// Used briefly at any hour, which spreads their calls over the day: 5,000 phones
			// used at night would be a burst of their own at every facility.
			p.mini, p.rat, p.planted, p.profile = true, event.RAT2G, true, profileAnytime
			zone := f.CellZones[rng.IntN(len(f.CellZones))]
			if mz := f.MASZones(); len(mz) > 0 {
				zone = mz[rng.IntN(len(mz))]
			}
			p.stays = []stay{{fac: f, zone: zone, from: arrive.Add(2 * time.Hour), to: g.end}}
			if f.MAS["visiting"] != nil {
				// Smuggled in at a visit: first seen in the visiting room.
				p.stays = append([]stay{{fac: f, zone: "visiting", from: arrive, to: arrive.Add(40 * time.Minute), announce: true}}, p.stays...)
				sights = append(sights, seen{b.tac, p.imei[8:11], f, arrive})
			}
			g.addPhone(p)
			prefix := p.imei[8:11]
			if !slices.Contains(prefixes, prefix) {
				prefixes = append(prefixes, prefix)
			}
			if i < 3 {
				sample = append(sample, p.imei)
			}
		}
		placed += count
	}
	base := Finding{
		Scenario:       ScenarioPrisonBreak,
		Facilities:     ids(fs),
		TACs:           tacs,
		SerialPrefixes: prefixes,
		IMEIs:          sample,
		Devices:        g.opt.SupplierPhones,
		Since:          slices.MinFunc(s.infected, time.Time.Compare),
	}
	windows := map[string]time.Duration{RuleTACSpread: 7 * day, RuleBatchRange: 14 * day, RuleNewTACNational: 7 * day}
	for _, rule := range []string{RuleTACSpread, RuleBatchRange, RuleNewTACNational} {
		f := base
		f.Rule = rule
		f.At = factTime(sights, rule)
		if f.At.IsZero() {
			continue // too few phones where a MAS sees them
		}
		// True before the rule has its history, and still true in its window when the
		// history is there: the rule can claim it from then.
		p := Promises[rule]
		if need := g.start.Add(p.History); f.At.Before(need) && !f.At.Before(need.Add(-windows[rule])) && need.Add(p.Delay).Before(g.end) {
			f.At = need
		}
		f.Summary = fmt.Sprintf("%d mini phones of TACs %s (serial blocks %s) spread from %s to %d facilities by %s; coordinated search on %s",
			g.opt.SupplierPhones, strings.Join(tacs, ", "), strings.Join(prefixes, ", "), base.Since.Format("2006-01-02"), n,
			slices.MaxFunc(s.infected, time.Time.Compare).Format("2006-01-02"), stamp(s.operation))
		g.plant(f)
	}
	return s.decoys(g, rng)
}

// factTime is when the supplier's phones first make the rule's fact true: five facilities
// new to one TAC on ten devices within 7 days (TAC_SPREAD); five devices of one serial block
// at five facilities within 7 days (BATCH_RANGE, which then holds for 5 devices at 3
// facilities within 14 days as well); one TAC at two facilities within 7 days
// (NEW_TAC_NATIONAL).
func factTime(sights []seen, rule string) time.Time {
	slices.SortStableFunc(sights, func(a, b seen) int { return a.at.Compare(b.at) })
	var best time.Time
	groups := map[string][]seen{}
	for _, s := range sights {
		key := s.tac
		if rule == RuleBatchRange {
			key += "/" + s.block
		}
		groups[key] = append(groups[key], s)
	}
	facilities, devices := 5, 5
	switch rule {
	case RuleTACSpread:
		devices = 10
	case RuleNewTACNational:
		facilities, devices = 2, 2
	}
	for _, ss := range groups {
		for i := range ss {
			facs := map[*world.Facility]bool{}
			n := 0
			for j := i; j >= 0 && ss[i].at.Sub(ss[j].at) <= 7*day; j-- {
				facs[ss[j].fac] = true
				n++
			}
			if len(facs) >= facilities && n >= devices {
				if best.IsZero() || ss[i].at.Before(best) {
					best = ss[i].at
				}
				break
			}
		}
	}
	return best
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
		for _, p := range g.byFacility[f] {
			if st := p.current(t); p.mini && p.planted && st != nil && st.fac == f {
				zones[st.zone] = true
			}
		}
		if len(zones) == 0 {
			for _, z := range f.CellZones {
				if !g.guarded(f, z, t) {
					zones[z] = true
					break
				}
			}
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
			spec.find, spec.read = 0.4, 1
		}
		for _, z := range zs {
			g.search(f, z, t, spec, rng, emit)
		}
	}
}

// decoys plants the near misses of the model rules, with models the background never draws:
// a rare model, at two facilities from the start, reaching four new ones within four days
// (TAC_SPREAD needs five); a rare model's new serial block of four devices at three new
// facilities (BATCH_RANGE needs five devices); a model unknown to the reference at one
// facility, then at a second nine days later (NEW_TAC_NATIONAL needs two within seven days).
func (s *prisonBreak) decoys(g *Generator, rng *rand.Rand) error {
	fs, err := g.sites("model-decoys", 13, deviceSite)
	if err != nil {
		return err
	}
	place := func(tac string, serial int, f *world.Facility, from time.Time, announce bool) *phone {
		p := g.newPhone(rng, tac, float64(g.dayOf(from))-60, 4+rng.Float64()*6, profileNight)
		if serial >= 0 {
			delete(g.usedIMEI, p.imei)
			p.imei = g.newIMEI(rng, tac, -1, serial)
		}
		p.planted, p.seizable = true, false
		p.stays = []stay{{fac: f, zone: masZone(rng, f), from: from, to: g.end, announce: announce}}
		g.addPhone(p)
		return p
	}

	// TAC_SPREAD: 2 facilities, then 4 new ones.
	spread := g.cat.Rare(0)
	for _, f := range fs[:2] {
		place(spread, -1, f, g.start, false)
	}
	d0 := g.after(warmUp+1, 0.6, 6, 0)
	var at time.Time
	var since time.Time
	for k, f := range fs[2:6] {
		at = g.visitTime(f, d0.Add(time.Duration(k)*day), rng)
		if k == 0 {
			since = at
		}
		place(spread, -1, f, at, true)
	}
	g.decoy(Finding{Scenario: ScenarioPrisonBreak, Rule: RuleTACSpread, Facilities: ids(fs[:6]), TACs: []string{spread}, Devices: 6, Since: since, At: at,
		Summary: fmt.Sprintf("a rare model (TAC %s), at 2 facilities from the start, reaches 4 new facilities from %s to %s (one short of 5)", spread, stamp(since), stamp(at))})

	// BATCH_RANGE: a model at 2 facilities, then a new serial block of 4 devices at 3 new ones.
	batch := g.cat.Rare(1)
	old := g.cat.Block(rng, batch, -100)
	for _, f := range fs[6:8] {
		place(batch, old*1000+rng.IntN(1000), f, g.start, false)
	}
	block := (old + 500) % 1000
	d0 = g.after(warmUp+2, 0.65, 5, 0)
	for k, f := range []*world.Facility{fs[8], fs[8], fs[9], fs[10]} {
		at = g.visitTime(f, d0.Add(time.Duration(k)*day), rng)
		if k == 0 {
			since = at
		}
		place(batch, block*1000+k, f, at, true)
	}
	g.decoy(Finding{Scenario: ScenarioPrisonBreak, Rule: RuleBatchRange, Facilities: ids(fs[6:11]), TACs: []string{batch},
		SerialPrefixes: []string{fmt.Sprintf("%03d", block)}, Devices: 4, Since: since, At: at,
		Summary: fmt.Sprintf("a new serial block %03d of a rare model (TAC %s): 4 devices at 3 new facilities from %s to %s (one short of 5 devices)",
			block, batch, stamp(since), stamp(at))})

	// NEW_TAC_NATIONAL: an unknown model at one facility, at a second 9 days later.
	fresh := g.cat.Unknown(0)
	first := g.visitTime(fs[11], g.after(warmUp+1, 0.5, 11, 0), rng)
	second := first.Add(9*day + time.Hour) // fs[12] has no drone detector: any day will do
	if second.Add(day).After(g.end) {
		return nil // the period is too short for it
	}
	place(fresh, -1, fs[11], first, true)
	place(fresh, -1, fs[12], second, true)
	g.decoy(Finding{Scenario: ScenarioPrisonBreak, Rule: RuleNewTACNational, Facilities: ids(fs[11:13]), TACs: []string{fresh}, Devices: 2, Since: first, At: second,
		Summary: fmt.Sprintf("a model never seen before (TAC %s) at %s on %s, then at %s 9 days later (not within 7 days)", fresh, fs[11].ID, stamp(first), fs[12].ID)})
	return nil
}
