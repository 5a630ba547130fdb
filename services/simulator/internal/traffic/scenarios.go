package traffic

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

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
	default:
		return &burst{}
	}
}

// at is the event time at a fraction of the simulated period, on a whole day, plus clock.
func (g *Generator) at(frac float64, clock time.Duration) time.Time {
	return g.start.AddDate(0, 0, int(math.Floor(frac*float64(g.opt.Days)))).Add(clock)
}

// dayOf is the simulation day of an event time.
func (g *Generator) dayOf(t time.Time) int { return int(t.Sub(g.start) / (24 * time.Hour)) }

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

// plantedPhone makes a scenario's phone at one facility zone over [from, to).
func (g *Generator) plantedPhone(rng *rand.Rand, tac string, serial int, rate float64, f *world.Facility, zone string, from, to time.Time) *phone {
	p := g.newPhone(rng, tac, serial, rate, profileNight)
	p.planted, p.seizable, p.simSwap = true, false, 0
	p.stays = []stay{{fac: f, zone: zone, from: from, to: to}}
	g.phones = append(g.phones, p)
	return p
}

// ---- prison-break-2025 ------------------------------------------------------------------

// transfer follows one inmate's phone: used for weeks in one facility, silent during the
// transfer, then used again in another facility.
type transfer struct{}

func (transfer) name() string { return ScenarioTransfer }

func (transfer) plan(g *Generator, rng *rand.Rand) error {
	fs := g.shuffled("transfer", withMAS)
	for _, a := range fs {
		for _, b := range fs {
			if d := world.DistanceKm(a, b); a == b || d < 40 || d > 400 {
				continue
			}
			leave := g.at(0.5, 7*time.Hour)
			arrive := leave.Add(9 * time.Hour)
			p := g.plantedPhone(rng, g.cheapTACs[0], -1, 8, a, a.MASZones()[0], g.at(0.15, 0), leave)
			p.stays = append(p.stays, stay{fac: b, zone: b.MASZones()[0], from: arrive, to: g.end})
			g.truth.Findings = append(g.truth.Findings, Finding{
				Scenario: ScenarioTransfer, Rule: "DEVICE_MULTI_SITE", Facilities: []string{a.ID, b.ID},
				TACs: []string{p.tac}, IMEIs: []string{p.imei}, Devices: 1, At: arrive,
				Summary: fmt.Sprintf("one phone used at %s until %s, then at %s (%.0f km) from %s: it moved with a transferred inmate",
					a.ID, leave.Format("2006-01-02 15:04"), b.ID, world.DistanceKm(a, b), arrive.Format("2006-01-02 15:04")),
			})
			return nil
		}
	}
	return errors.New("no two facilities with a MAS 40 to 400 km apart")
}

func (transfer) day(*Generator, int, *rand.Rand, func(event.Detector)) {}

// ---- drone-drop --------------------------------------------------------------------------

// droneDrop is a drone flying over a facility at night, followed within hours by phones the
// facility has never seen.
type droneDrop struct {
	fac    *world.Facility
	flight time.Time
	phones []*phone
}

func (*droneDrop) name() string { return ScenarioDroneDrop }

func (s *droneDrop) plan(g *Generator, rng *rand.Rand) error {
	fs := g.shuffled("drone-drop", func(f *world.Facility) bool { return withMAS(f) && len(f.Drones) > 0 })
	if len(fs) == 0 {
		return errors.New("no facility with both a MAS and a drone detector")
	}
	s.fac = fs[0]
	s.flight = g.at(0.6, time.Hour+40*time.Minute)
	zones := s.fac.MASZones()
	var imeis []string
	for i := range 4 {
		from := s.flight.Add(40*time.Minute + time.Duration(i)*25*time.Minute)
		p := g.plantedPhone(rng, g.cheapTACs[1%len(g.cheapTACs)], -1, 6, s.fac, zones[i%len(zones)], from, g.end)
		s.phones = append(s.phones, p)
		imeis = append(imeis, p.imei)
	}
	g.truth.Findings = append(g.truth.Findings, Finding{
		Scenario: ScenarioDroneDrop, Rule: "DRONE_THEN_NEW_DEVICE", Facilities: []string{s.fac.ID},
		IMEIs: imeis, Devices: len(imeis), At: s.flight,
		Summary: fmt.Sprintf("a drone over %s at %s, then %d phones never seen there within 2 hours",
			s.fac.ID, s.flight.Format("2006-01-02 15:04"), len(imeis)),
	})
	return nil
}

func (s *droneDrop) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	if g.dayOf(s.flight) != d {
		return
	}
	droneFlight(s.fac, s.flight, "", rng, emit)
	// Each dropped phone announces itself when switched on.
	for _, p := range s.phones {
		st := p.stays[0]
		emit(g.masEvent(p, st.fac.MASFor(st.zone), st.zone, event.KindMASAttach, st.from.Add(time.Minute), rng))
	}
}

// ---- cloned-imei -------------------------------------------------------------------------

// clonedIMEI is one IMEI used by two handsets in two distant facilities at the same time:
// a cloned (or reprogrammed) IMEI.
type clonedIMEI struct {
	a, b     *phone
	fa, fb   *world.Facility
	meetings []time.Time
}

func (*clonedIMEI) name() string { return ScenarioClonedIMEI }

func (s *clonedIMEI) plan(g *Generator, rng *rand.Rand) error {
	fs := g.shuffled("cloned-imei", withMAS)
	for _, a := range fs {
		for _, b := range fs {
			if world.DistanceKm(a, b) < 400 {
				continue
			}
			s.fa, s.fb = a, b
			from := g.at(0.3, 0)
			s.a = g.plantedPhone(rng, g.cheapTACs[2%len(g.cheapTACs)], -1, 5, a, a.MASZones()[0], from, g.end)
			s.b = g.plantedPhone(rng, s.a.tac, -1, 5, b, b.MASZones()[0], from, g.end)
			s.b.imei = s.a.imei // the clone
			for _, f := range []float64{0.4, 0.6, 0.8} {
				s.meetings = append(s.meetings, g.at(f, 20*time.Hour))
			}
			g.truth.Findings = append(g.truth.Findings, Finding{
				Scenario: ScenarioClonedIMEI, Rule: "IMPOSSIBLE_TRAVEL", Facilities: []string{a.ID, b.ID},
				TACs: []string{s.a.tac}, IMEIs: []string{s.a.imei}, Devices: 1, At: s.meetings[0],
				Summary: fmt.Sprintf("one IMEI seen at %s and at %s, %.0f km apart, within 17 minutes on %s: a cloned IMEI",
					a.ID, b.ID, world.DistanceKm(a, b), s.meetings[0].Format("2006-01-02")),
			})
			return nil
		}
	}
	return errors.New("no two facilities with a MAS 400 km apart")
}

func (s *clonedIMEI) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	for _, t := range s.meetings {
		if g.dayOf(t) == d {
			za, zb := s.a.stays[0].zone, s.b.stays[0].zone
			emit(g.masEvent(s.a, s.fa.MASFor(za), za, event.KindSMSAttempt, t, rng))
			emit(g.masEvent(s.b, s.fb.MASFor(zb), zb, event.KindCallAttempt, t.Add(17*time.Minute), rng))
		}
	}
}

// ---- national-burst ----------------------------------------------------------------------

// burst is a coordinated burst of calls and SMS in many facilities within the same ten
// minutes (an order relayed by phone, a riot being organised).
type burst struct {
	fs []*world.Facility
	at time.Time
}

func (*burst) name() string { return ScenarioBurst }

func (s *burst) plan(g *Generator, _ *rand.Rand) error {
	fs := g.shuffled("burst", withMAS)
	if len(fs) < 5 {
		return errors.New("fewer than 5 facilities with a MAS")
	}
	s.fs = fs[:min(12, len(fs))]
	s.at = g.at(0.85, 20*time.Hour+30*time.Minute)
	g.truth.Findings = append(g.truth.Findings, Finding{
		Scenario: ScenarioBurst, Rule: "SYNC_BURST", Facilities: ids(s.fs), At: s.at,
		Summary: fmt.Sprintf("%d facilities with 30 to 60 call and SMS attempts each between %s and %s",
			len(s.fs), s.at.Format("2006-01-02 15:04"), s.at.Add(10*time.Minute).Format("15:04")),
	})
	return nil
}

func (s *burst) day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector)) {
	if g.dayOf(s.at) != d {
		return
	}
	for _, f := range s.fs {
		var here []*phone
		for _, p := range g.phones {
			if st := p.current(s.at); p.seizable && st != nil && st.fac == f && f.MASFor(st.zone) != nil {
				here = append(here, p)
			}
		}
		for len(here) < 5 {
			zs := f.MASZones()
			here = append(here, g.plantedPhone(rng, g.cheapTACs[rng.IntN(len(g.cheapTACs))], -1, 0, f, zs[rng.IntN(len(zs))], s.at, g.end))
		}
		for range 30 + rng.IntN(31) {
			p := here[rng.IntN(len(here))]
			st := p.current(s.at)
			kind := event.KindCallAttempt
			if rng.IntN(2) == 0 {
				kind = event.KindSMSAttempt
			}
			t := s.at.Add(time.Minute + time.Duration(rng.Int64N(int64(8*time.Minute))))
			emit(g.masEvent(p, f.MASFor(st.zone), st.zone, kind, t, rng))
		}
	}
}
