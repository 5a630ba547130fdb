package traffic

// Planted scenarios: each plants the facts its rules must report, after the history they
// need, and a near miss (decoy) just under each rule's threshold that must stay quiet.

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/identity"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// warmUp is the history the baseline rules need (TAC_SPREAD, BATCH_RANGE, SYNC_BURST 28 days,
// DRONE_THEN_NEW_DEVICE 30): their plants come after it when the period is long enough.
const warmUp = 28

func newScenario(name string) scenario {
	switch name {
	case ScenarioPrisonBreak:
		return &prisonBreak{}
	case ScenarioTransfer:
		return &transfer{}
	case ScenarioDroneDrop:
		return &droneDrop{}
	case ScenarioClonedIMEI:
		return &clonedIMEI{}
	case ScenarioSIMChurn:
		return &simChurn{}
	case ScenarioSharedSIM:
		return &sharedSIM{}
	case ScenarioResurrection:
		return &resurrection{}
	case ScenarioSearchMiss:
		return &searchMiss{}
	default:
		return &burst{}
	}
}

// at is the event time at a fraction of the simulated period, on a whole day, plus clock.
func (g *Generator) at(frac float64, clock time.Duration) time.Time {
	return g.start.AddDate(0, 0, int(math.Floor(frac*float64(g.opt.Days)))).Add(clock)
}

// after is the event time of day minDay (or later, at frac of the period) plus clock, when
// the period still has need days after it; otherwise, in a period too short for the
// history, the day at frac.
func (g *Generator) after(minDay int, frac float64, need int, clock time.Duration) time.Time {
	d := max(minDay, int(math.Floor(frac*float64(g.opt.Days))))
	if d+need > g.opt.Days {
		d = int(math.Floor(frac * float64(g.opt.Days)))
	}
	return g.start.AddDate(0, 0, d).Add(clock)
}

// dayOf is the simulation day of an event time.
func (g *Generator) dayOf(t time.Time) int { return int(t.Sub(g.start) / day) }

// shuffled returns the facilities that satisfy keep, in an order decided by the seed and
// the purpose only (not by the order of the reference files).
func (g *Generator) shuffled(purpose string, keep func(*world.Facility) bool) []*world.Facility {
	var out []*world.Facility
	for _, f := range g.world.Facilities {
		if keep(f) {
			out = append(out, f)
		}
	}
	key := func(f *world.Facility) uint64 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s/%s", g.opt.Seed, purpose, f.ID)
		return h.Sum64()
	}
	slices.SortFunc(out, func(a, b *world.Facility) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	return out
}

func ids(fs []*world.Facility) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func withMAS(f *world.Facility) bool { return len(f.MASZones()) > 0 }

// deviceSite is where a planted phone can be seen (a MAS) and no drone flies: the phones of a
// planted pattern never look like a drop.
func deviceSite(f *world.Facility) bool { return withMAS(f) && len(f.Drones) == 0 }

// sites returns n facilities for a rule's pattern, none used by another pattern of the same
// rule (so that what a rule reports is told apart by facility), and marks them used.
func (g *Generator) sites(purpose string, n int, keep func(*world.Facility) bool, rules ...string) ([]*world.Facility, error) {
	var out []*world.Facility
	for _, f := range g.shuffled(purpose, keep) {
		if len(out) == n {
			break
		}
		if !slices.ContainsFunc(rules, func(r string) bool { return slices.Contains(g.taken[r], f) }) {
			out = append(out, f)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("%s: %d facilities found, %d needed", purpose, len(out), n)
	}
	for _, r := range rules {
		g.taken[r] = append(g.taken[r], out...)
	}
	return out, nil
}

// pair returns two facilities for a rule's pattern whose distance dist accepts, unused by
// another pattern of the rules, and marks them used.
func (g *Generator) pair(purpose string, dist func(km float64) bool, rules ...string) (*world.Facility, *world.Facility, error) {
	used := func(f *world.Facility) bool {
		return slices.ContainsFunc(rules, func(r string) bool { return slices.Contains(g.taken[r], f) })
	}
	fs := g.shuffled(purpose, deviceSite)
	for _, a := range fs {
		for _, b := range fs {
			if a == b || used(a) || used(b) || !dist(world.DistanceKm(a, b)) {
				continue
			}
			for _, r := range rules {
				g.taken[r] = append(g.taken[r], a, b)
			}
			return a, b, nil
		}
	}
	return nil, nil, fmt.Errorf("%s: no two facilities with a MAS at the distance needed", purpose)
}

// plantedPhone makes a scenario's phone, an ordinary model, in a zone of f over [from, to):
// it announces itself at from, and no search finds it unless its scenario says so.
func (g *Generator) plantedPhone(rng *rand.Rand, f *world.Facility, zone string, from, to time.Time, rate float64) *phone {
	p := g.newPhone(rng, g.cat.Popular(rng, identity.Contraband, 30), float64(g.dayOf(from))-90*rng.Float64(), rate, profileNight)
	p.planted, p.seizable = true, false
	p.stays = []stay{{fac: f, zone: zone, from: from, to: to, announce: true}}
	g.addPhone(p)
	return p
}

func masZone(rng *rand.Rand, f *world.Facility) string {
	zs := f.MASZones()
	return zs[rng.IntN(len(zs))]
}

func stamp(t time.Time) string { return t.Format("2006-01-02 15:04") }

// ---- inmate-transfer ---------------------------------------------------------------------

// transfer follows one inmate's phone: used for weeks in one facility, silent during the
// transfer, then used again in another facility. Its near miss: a phone that turns up at a
// second facility 15 days after it was last seen at the first (beyond the 14-day window).
type transfer struct{}

func (transfer) name() string { return ScenarioTransfer }

func (transfer) plan(g *Generator, rng *rand.Rand) error {
	a, b, err := g.pair("transfer", func(km float64) bool { return km >= 40 && km <= 400 }, RuleDeviceMultiSite)
	if err != nil {
		return err
	}
	leave := g.at(0.5, 7*time.Hour)
	arrive := leave.Add(9 * time.Hour)
	p := g.plantedPhone(rng, a, masZone(rng, a), g.at(0.15, 20*time.Hour), leave, 8)
	g.addStay(p, stay{fac: b, zone: masZone(rng, b), from: arrive, to: g.end, announce: true})
	g.plant(Finding{
		Scenario: ScenarioTransfer, Rule: RuleDeviceMultiSite, Facilities: []string{a.ID, b.ID},
		TACs: []string{p.tac}, IMEIs: []string{p.imei}, Devices: 1, Since: p.stays[0].from, At: arrive,
		Summary: fmt.Sprintf("one phone used at %s until %s, then at %s (%.0f km) from %s: it moved with a transferred inmate",
			a.ID, stamp(leave), b.ID, world.DistanceKm(a, b), stamp(arrive)),
	})

	// The near miss: last seen at c, seen at d 15 days and 6 hours later.
	gone := g.at(0.3, 8*time.Hour)
	back := gone.Add(15*day + 6*time.Hour)
	if back.Add(day).After(g.end) {
		return nil // the period is too short for it
	}
	c, d, err := g.pair("transfer-decoy", func(km float64) bool { return km >= 40 && km <= 400 }, RuleDeviceMultiSite)
	if err != nil {
		return err
	}
	q := g.plantedPhone(rng, c, masZone(rng, c), g.at(0.05, 20*time.Hour), gone, 8)
	g.addStay(q, stay{fac: d, zone: masZone(rng, d), from: back, to: g.end, announce: true})
	g.decoy(Finding{
		Scenario: ScenarioTransfer, Rule: RuleDeviceMultiSite, Facilities: []string{c.ID, d.ID},
		TACs: []string{q.tac}, IMEIs: []string{q.imei}, Devices: 1, Since: q.stays[0].from, At: back,
		Summary: fmt.Sprintf("one phone last seen at %s before %s, then at %s from %s: 15 days later, beyond the 14-day window",
			c.ID, stamp(gone), d.ID, stamp(back)),
	})
	return nil
}

func (transfer) day(*Generator, int, *rand.Rand, func(event.Detector)) {}

// ---- drone-drop --------------------------------------------------------------------------

// droneDrop is a drone flying over a facility at night, followed within two hours by four
// phones the facility has never seen. Its near miss: a drone followed by a single new phone.
type droneDrop struct {
	flights []flight
	phones  [][]*phone
}

func (*droneDrop) name() string { return ScenarioDroneDrop }

func (s *droneDrop) plan(g *Generator, rng *rand.Rand) error {
	fs, err := g.sites("drone-drop", 2, func(f *world.Facility) bool { return withMAS(f) && len(f.Drones) > 0 }, RuleDroneThenNewDevice)
	if err != nil {
		return errors.New("fewer than two facilities with both a MAS and a drone detector")
	}
	for i, n := range []int{4, 1} {
		f := fs[i]
		at := g.after(warmUp+3+2*i, 0.6+0.1*float64(i), 2, time.Hour+40*time.Minute+time.Duration(i)*30*time.Minute)
		g.addFlight(f, at)
		s.flights = append(s.flights, flight{f, at})
		var ps []*phone
		var imeis []string
		for k := range n {
			from := at.Add(40*time.Minute + time.Duration(k)*25*time.Minute)
			p := g.plantedPhone(rng, f, masZone(rng, f), from, g.end, 6)
			ps = append(ps, p)
			imeis = append(imeis, p.imei)
		}
		s.phones = append(s.phones, ps)
		if n > 1 {
			g.plant(Finding{
				Scenario: ScenarioDroneDrop, Rule: RuleDroneThenNewDevice, Facilities: []string{f.ID},
				IMEIs: imeis, Devices: n, Since: at, At: ps[1].stays[0].from,
				Summary: fmt.Sprintf("a drone over %s at %s, then %d phones never seen there within 2 hours", f.ID, stamp(at), n),
			})
		} else {
			g.decoy(Finding{
				Scenario: ScenarioDroneDrop, Rule: RuleDroneThenNewDevice, Facilities: []string{f.ID},
				IMEIs: imeis, Devices: n, Since: at, At: ps[0].stays[0].from,
				Summary: fmt.Sprintf("a drone over %s at %s, then a single new phone 40 minutes later", f.ID, stamp(at)),
			})
		}
	}
	return nil
}

func (s *droneDrop) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	for _, fl := range s.flights {
		if g.dayOf(fl.at) == d {
			droneFlight(fl.fac, fl.at, "", rng, emit)
		}
	}
}

// ---- cloned-imei -------------------------------------------------------------------------

// clonedIMEI is one IMEI used by two handsets in two distant facilities: a cloned (or
// reprogrammed) IMEI, seen at both within 17 minutes three times. Its near miss: a clone in
// two facilities 80 to 95 km apart, seen at both within 40 minutes (under the 100 km).
type clonedIMEI struct {
	meetings []meeting
}

// meeting is an event of handset a at t and of its clone b gap later.
type meeting struct {
	a, b *phone
	t    time.Time
	gap  time.Duration
}

func (*clonedIMEI) name() string { return ScenarioClonedIMEI }

func (s *clonedIMEI) plan(g *Generator, rng *rand.Rand) error {
	clone := func(purpose string, dist func(float64) bool, from time.Time, fracs []float64, gap time.Duration, clock time.Duration) (*phone, *world.Facility, *world.Facility, []time.Time, error) {
		fa, fb, err := g.pair(purpose, dist, RuleImpossibleTravel, RuleDeviceMultiSite)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		a := g.plantedPhone(rng, fa, masZone(rng, fa), from, g.end, 5)
		// The clone is used only when it meets its twin.
		b := g.plantedPhone(rng, fb, masZone(rng, fb), g.at(fracs[0], clock), g.end, 0)
		delete(g.usedIMEI, b.imei)
		b.imei, b.tac = a.imei, a.tac
		b.stays[0].announce = false
		var ts []time.Time
		for _, f := range fracs {
			t := g.at(f, clock)
			s.meetings = append(s.meetings, meeting{a, b, t, gap})
			ts = append(ts, t)
		}
		return a, fa, fb, ts, nil
	}
	a, fa, fb, ts, err := clone("cloned-imei", func(km float64) bool { return km >= 400 }, g.at(0.3, 20*time.Hour), []float64{0.4, 0.6, 0.8}, 17*time.Minute, 20*time.Hour)
	if err != nil {
		return err
	}
	km := world.DistanceKm(fa, fb)
	g.plant(Finding{
		Scenario: ScenarioClonedIMEI, Rule: RuleImpossibleTravel, Facilities: []string{fa.ID, fb.ID},
		TACs: []string{a.tac}, IMEIs: []string{a.imei}, Devices: 1, Since: ts[0], At: ts[0].Add(17 * time.Minute),
		Summary: fmt.Sprintf("one IMEI seen at %s and at %s, %.0f km apart, within 17 minutes on %s: a cloned IMEI", fa.ID, fb.ID, km, ts[0].Format("2006-01-02")),
	})
	g.plant(Finding{
		Scenario: ScenarioClonedIMEI, Rule: RuleDeviceMultiSite, Facilities: []string{fa.ID, fb.ID},
		TACs: []string{a.tac}, IMEIs: []string{a.imei}, Devices: 1, Since: a.stays[0].from, At: ts[0].Add(17 * time.Minute),
		Summary: fmt.Sprintf("the cloned IMEI is at two facilities, %s and %s, from %s", fa.ID, fb.ID, stamp(ts[0].Add(17*time.Minute))),
	})

	c, fc, fd, us, err := clone("cloned-imei-decoy", func(km float64) bool { return km >= 80 && km <= 95 }, g.at(0.35, 21*time.Hour), []float64{0.55}, 40*time.Minute, 21*time.Hour)
	if err != nil {
		return err
	}
	km = world.DistanceKm(fc, fd)
	g.decoy(Finding{
		Scenario: ScenarioClonedIMEI, Rule: RuleImpossibleTravel, Facilities: []string{fc.ID, fd.ID},
		TACs: []string{c.tac}, IMEIs: []string{c.imei}, Devices: 1, Since: us[0], At: us[0].Add(40 * time.Minute),
		Summary: fmt.Sprintf("one IMEI seen at %s and at %s within 40 minutes on %s, but only %.0f km apart (under 100 km)", fc.ID, fd.ID, us[0].Format("2006-01-02"), km),
	})
	g.plant(Finding{
		Scenario: ScenarioClonedIMEI, Rule: RuleDeviceMultiSite, Facilities: []string{fc.ID, fd.ID},
		TACs: []string{c.tac}, IMEIs: []string{c.imei}, Devices: 1, Since: c.stays[0].from, At: us[0].Add(40 * time.Minute),
		Summary: fmt.Sprintf("the IMEI cloned %.0f km away is at two facilities, %s and %s, from %s", km, fc.ID, fd.ID, stamp(us[0].Add(40*time.Minute))),
	})
	return nil
}

func (s *clonedIMEI) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	for _, m := range s.meetings {
		if g.dayOf(m.t) == d {
			g.signal(m.a, event.KindSMSAttempt, m.t, rng, emit)
			g.signal(m.b, event.KindCallAttempt, m.t.Add(m.gap), rng, emit)
		}
	}
}

// ---- national-burst ----------------------------------------------------------------------

// burst is a coordinated burst of calls and SMS in many facilities within the same ten
// minutes (an order relayed by phone, a riot being organised), after a 28-day baseline. Its
// near miss: the same burst in four facilities only.
type burst struct {
	bursts []burstAt
}

type burstAt struct {
	fs []*world.Facility
	at time.Time
}

func (*burst) name() string { return ScenarioBurst }

func (s *burst) plan(g *Generator, _ *rand.Rand) error {
	for i, n := range []int{12, 4} {
		fs, err := g.sites("burst", n, deviceSite, RuleSyncBurst)
		if err != nil {
			return err
		}
		// The plant in the evening, the near miss in a quiet afternoon hour.
		at := g.after(warmUp+7, 0.85, 1, 20*time.Hour+30*time.Minute)
		if i == 1 {
			at = g.after(warmUp+5, 0.8, 1, 14*time.Hour+30*time.Minute)
		}
		s.bursts = append(s.bursts, burstAt{fs, at})
		f := Finding{
			Scenario: ScenarioBurst, Rule: RuleSyncBurst, Facilities: ids(fs), Since: at, At: at.Add(10 * time.Minute),
			Summary: fmt.Sprintf("%d facilities with 30 to 60 call and SMS attempts each between %s and %s",
				len(fs), stamp(at), at.Add(10*time.Minute).Format("15:04")),
		}
		if i == 0 {
			g.plant(f)
		} else {
			f.Summary += ": one facility short of the five"
			g.decoy(f)
		}
	}
	return nil
}

func (s *burst) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	for _, b := range s.bursts {
		if g.dayOf(b.at) != d {
			continue
		}
		for _, f := range b.fs {
			var here []*phone
			for _, p := range g.byFacility[f] {
				if st := p.current(b.at); p.seizable && st != nil && st.fac == f && st.zone != "visiting" && f.MASFor(st.zone) != nil && !st.to.Before(b.at.Add(10*time.Minute)) {
					here = append(here, p)
				}
			}
			for len(here) < 5 {
				// Phones that only speak up for the burst.
				here = append(here, g.plantedPhone(rng, f, masZone(rng, f), b.at, b.at.Add(15*time.Minute), 0))
			}
			for range 30 + rng.IntN(31) {
				p := here[rng.IntN(len(here))]
				kind := event.KindCallAttempt
				if rng.IntN(2) == 0 {
					kind = event.KindSMSAttempt
				}
				g.signal(p, kind, b.at.Add(time.Minute+time.Duration(rng.Int64N(int64(8*time.Minute)))), rng, emit)
			}
		}
	}
}

// ---- sim-churn ---------------------------------------------------------------------------

// simChurn is a handset cycling through SIM cards: three within three days. Its near miss:
// a handset that changes its SIM once.
type simChurn struct{ simSwitches }

// simSwitch is a handset's first event with a new SIM.
type simSwitch struct {
	p *phone
	t time.Time
}

// simSwitches are the SIM changes of planted handsets, each announced by an attach.
type simSwitches struct{ switches []simSwitch }

func (s *simSwitches) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	for _, sw := range s.switches {
		if g.dayOf(sw.t) == d {
			g.signal(sw.p, event.KindMASAttach, sw.t, rng, emit)
		}
	}
}

func (*simChurn) name() string { return ScenarioSIMChurn }

func (s *simChurn) plan(g *Generator, rng *rand.Rand) error {
	fs, err := g.sites("sim-churn", 2, deviceSite, RuleSIMChurn)
	if err != nil {
		return err
	}
	for i, fracs := range [][]float64{{0.4, 0.45}, {0.5}} {
		f := fs[i]
		p := g.plantedPhone(rng, f, masZone(rng, f), g.at(0.2+0.05*float64(i), 21*time.Hour), g.end, 6)
		p.simFrom = []time.Time{p.stays[0].from}
		for _, fr := range fracs {
			t := g.at(fr, 12*time.Hour)
			p.sims, p.simFrom = append(p.sims, identity.IMSI(rng)), append(p.simFrom, t)
			s.switches = append(s.switches, simSwitch{p, t})
		}
		last := p.simFrom[len(p.simFrom)-1]
		f2 := Finding{Scenario: ScenarioSIMChurn, Rule: RuleSIMChurn, Facilities: []string{f.ID}, TACs: []string{p.tac}, IMEIs: []string{p.imei},
			Devices: 1, Since: p.simFrom[0], At: last}
		if i == 0 {
			f2.Summary = fmt.Sprintf("one handset at %s with 3 SIM cards, the third from %s", f.ID, stamp(last))
			g.plant(f2)
		} else {
			f2.Summary = fmt.Sprintf("one handset at %s that changed its SIM card once, on %s (2 SIMs)", f.ID, stamp(last))
			g.decoy(f2)
		}
	}
	return nil
}

// ---- shared-sim --------------------------------------------------------------------------

// sharedSIM is one SIM card passed between three handsets of a wing within four days. Its
// near miss: a SIM card used in two handsets.
type sharedSIM struct{ simSwitches }

func (*sharedSIM) name() string { return ScenarioSharedSIM }

func (s *sharedSIM) plan(g *Generator, rng *rand.Rand) error {
	fs, err := g.sites("shared-sim", 2, deviceSite, RuleSIMChurnSharedSIM)
	if err != nil {
		return err
	}
	for i, n := range []int{3, 2} {
		f := fs[i]
		zone := masZone(rng, f)
		t0 := g.at(0.5+0.1*float64(i), 13*time.Hour)
		from := g.at(0.3+0.05*float64(i), 21*time.Hour)
		shared := identity.IMSI(rng)
		var imeis []string
		var last time.Time
		for k := range n {
			// The SIM is in handset k from in to out (the last keeps it).
			p := g.plantedPhone(rng, f, zone, from.Add(time.Duration(k)*time.Hour), g.end, 5)
			imeis = append(imeis, p.imei)
			in, out := t0.Add(time.Duration(k)*2*day), t0.Add(time.Duration(k+1)*2*day)
			own := p.sims[0]
			switch {
			case k == 0:
				// Its first handset, which then takes another SIM.
				p.sims, p.simFrom = []string{shared, identity.IMSI(rng)}, []time.Time{from, out}
			case k < n-1:
				p.sims, p.simFrom = []string{own, shared, own}, []time.Time{from, in, out}
			default:
				p.sims, p.simFrom = []string{own, shared}, []time.Time{from, in}
			}
			for _, t := range p.simFrom[1:] {
				s.switches = append(s.switches, simSwitch{p, t})
			}
			last = in
		}
		f2 := Finding{Scenario: ScenarioSharedSIM, Rule: RuleSIMChurnSharedSIM, Facilities: []string{f.ID}, IMEIs: imeis,
			Devices: n, Since: from, At: last}
		if i == 0 {
			f2.Summary = fmt.Sprintf("one SIM card passed between 3 handsets at %s from %s to %s", f.ID, stamp(t0), stamp(last))
			g.plant(f2)
		} else {
			f2.Summary = fmt.Sprintf("one SIM card used in 2 handsets at %s, from %s", f.ID, stamp(last))
			g.decoy(f2)
		}
	}
	return nil
}

// ---- seized-resurrection -----------------------------------------------------------------

// resurrection is a phone seized in a search (its IMEI recorded) that transmits again two
// days later: it went back into circulation. Its near miss: a seized phone that attaches
// once more 50 minutes after the seizure (still switched on in the evidence bag), then never.
type resurrection struct {
	searches []plantedSearch
}

// plantedSearch is a search of a zone at t that finds phone p (seizes, or finds nothing).
type plantedSearch struct {
	fac     *world.Facility
	zone    string
	t       time.Time
	p       *phone
	nothing bool
	// again is when p transmits once more (zero: never by itself).
	again time.Time
}

func (*resurrection) name() string { return ScenarioResurrection }

func (s *resurrection) plan(g *Generator, rng *rand.Rand) error {
	fs, err := g.sites("seized-resurrection", 2, func(f *world.Facility) bool { return deviceSite(f) && f.Search != nil }, RuleSeizedResurrection)
	if err != nil {
		return err
	}
	for i, f := range fs {
		zone := masZone(rng, f)
		t := g.at(0.55+0.05*float64(i), 8*time.Hour)
		seized := t.Add(2 * time.Minute) // the seizure event of a phone a search must find
		p := g.plantedPhone(rng, f, zone, g.at(0.3, 21*time.Hour+time.Duration(i)*time.Hour), t, 6)
		f2 := Finding{Scenario: ScenarioResurrection, Rule: RuleSeizedResurrection, Facilities: []string{f.ID},
			TACs: []string{p.tac}, IMEIs: []string{p.imei}, Devices: 1, Since: seized}
		if i == 0 {
			back := t.Add(2 * day)
			g.addStay(p, stay{fac: f, zone: zone, from: back, to: g.end, announce: true})
			s.searches = append(s.searches, plantedSearch{fac: f, zone: zone, t: t, p: p})
			f2.At = back
			f2.Summary = fmt.Sprintf("a phone seized at %s on %s transmits again from %s", f.ID, stamp(seized), stamp(back))
			g.plant(f2)
		} else {
			once := seized.Add(50 * time.Minute)
			g.addStay(p, stay{fac: f, zone: zone, from: once, to: once.Add(time.Minute)})
			s.searches = append(s.searches, plantedSearch{fac: f, zone: zone, t: t, p: p, again: once})
			f2.At = once
			f2.Summary = fmt.Sprintf("a phone seized at %s on %s attaches once more 50 minutes later (under the hour), then never", f.ID, stamp(seized))
			g.decoy(f2)
		}
	}
	return nil
}

func (s *resurrection) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	runSearches(g, d, s.searches, rng, emit)
}

// runSearches carries out the planted searches of day d.
func runSearches(g *Generator, d int, searches []plantedSearch, rng *rand.Rand, emit func(event.Detector)) {
	for _, ps := range searches {
		if g.dayOf(ps.t) == d {
			spec := searchSpec{id: fmt.Sprintf("s-%s-%d-p", ps.fac.ID, d), find: 0.3, read: 0.7, foundBy: "cell_search", nothing: ps.nothing}
			if !ps.nothing {
				spec.must = []*phone{ps.p}
			}
			if ps.nothing {
				// The phone was active in the zone three hours before the search.
				g.signal(ps.p, event.KindSMSAttempt, ps.t.Add(-3*time.Hour), rng, emit)
			}
			g.search(ps.fac, ps.zone, ps.t, spec, rng, emit)
		}
		if !ps.again.IsZero() && g.dayOf(ps.again) == d {
			g.signal(ps.p, event.KindMASAttach, ps.again, rng, emit)
		}
	}
}

// ---- search-miss -------------------------------------------------------------------------

// searchMiss is a phone hidden in a yard, used during the walks, active three hours before a
// search of the yard that finds nothing, and seen again the next morning. Its near miss: the
// same, but the phone stays silent until 80 hours after the search (beyond the 72 hours).
type searchMiss struct {
	searches []plantedSearch
}

func (*searchMiss) name() string { return ScenarioSearchMiss }

func (s *searchMiss) plan(g *Generator, rng *rand.Rand) error {
	yard := func(f *world.Facility) []string {
		var out []string
		for _, y := range f.Yards {
			if f.MASFor(y) != nil {
				out = append(out, y)
			}
		}
		return out
	}
	fs, err := g.sites("search-miss", 2, func(f *world.Facility) bool { return deviceSite(f) && f.Search != nil && len(yard(f)) > 0 }, RuleSearchMiss)
	if err != nil {
		return err
	}
	for i, f := range fs {
		ys := yard(f)
		zone := ys[rng.IntN(len(ys))]
		t := g.at(0.6+0.05*float64(i), 9*time.Hour+30*time.Minute)
		p := g.plantedPhone(rng, f, zone, g.at(0.3, 8*time.Hour+time.Duration(i)*time.Hour), g.end, 3)
		p.profile = profileYard
		f2 := Finding{Scenario: ScenarioSearchMiss, Rule: RuleSearchMiss, Facilities: []string{f.ID},
			TACs: []string{p.tac}, IMEIs: []string{p.imei}, Devices: 1, Since: t.Add(-3 * time.Hour)}
		if i == 0 {
			// Silent after the search until the next morning.
			again := t.Add(20 * time.Hour)
			p.stays[0].to = t
			g.addStay(p, stay{fac: f, zone: zone, from: again, to: g.end})
			s.searches = append(s.searches, plantedSearch{fac: f, zone: zone, t: t, p: p, nothing: true, again: again})
			f2.At = again
			f2.Summary = fmt.Sprintf("a phone active in %s at %s three hours before a search that found nothing there on %s, seen again 20 hours later",
				zone, f.ID, stamp(t))
			g.plant(f2)
		} else {
			again := t.Add(80 * time.Hour)
			p.stays[0].to = t
			g.addStay(p, stay{fac: f, zone: zone, from: again, to: g.end})
			s.searches = append(s.searches, plantedSearch{fac: f, zone: zone, t: t, p: p, nothing: true, again: again})
			f2.At = again
			f2.Summary = fmt.Sprintf("a phone active in %s at %s before a search that found nothing there on %s, silent until 80 hours later (beyond 72)",
				zone, f.ID, stamp(t))
			g.decoy(f2)
		}
	}
	return nil
}

func (s *searchMiss) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	runSearches(g, d, s.searches, rng, emit)
}
