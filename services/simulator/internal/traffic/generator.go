package traffic

import (
	"cmp"
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

const day = 24 * time.Hour

// profile is when a phone is used.
type profile int

const (
	// profileNight: contraband phones, mostly between 21:00 and 02:00, some by day.
	profileNight profile = iota
	// profileMorning, profileAfternoon and profileNightShift: staff phones during their shift.
	profileMorning
	profileAfternoon
	profileNightShift
	// profileYard: a phone hidden in a yard, used during the walks.
	profileYard
	// profileAnytime: a mini phone, used briefly at any hour.
	profileAnytime
)

// hourWeights are the relative chances of each UTC hour per profile (France is UTC+1 or +2).
var hourWeights = map[profile][24]float64{
	profileNight:      {9, 7, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 2, 3, 4, 6, 9, 11, 11},
	profileMorning:    {0, 0, 0, 0, 0, 2, 5, 5, 5, 5, 5, 5, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	profileAfternoon:  {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 5, 5, 5, 5, 5, 5, 4, 1, 0, 0, 0},
	profileNightShift: {4, 3, 2, 2, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 5, 5, 5, 5},
	profileYard:       {0, 0, 0, 0, 0, 0, 0, 5, 5, 5, 0, 0, 0, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0},
	profileAnytime:    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
}

// stay is a phone's presence in one zone of one facility over [from, to). A phone announces
// itself (a mas_attach when it is switched on) at the start of an announced stay, so that
// the moment it is first seen there is exact.
type stay struct {
	fac      *world.Facility
	zone     string
	from, to time.Time
	announce bool
}

// phone is one handset the simulation follows.
type phone struct {
	imei, tac string
	// sims are the SIMs the handset holds: sims[i] from simFrom[i] on (simFrom is nil for a
	// handset that keeps its first SIM).
	sims     []string
	simFrom  []time.Time
	contacts []string
	stays    []stay
	// rate is the number of transmissions per day.
	rate    float64
	profile profile
	// rota, when not negative, is the staff member's place in a five-days-on, two-off cycle.
	rota    int
	outcome event.Outcome
	rat     event.RAT
	// seizable phones can be found in searches.
	seizable bool
	// planted phones belong to a scenario, which decides their stays.
	planted bool
	mini    bool
}

// current returns the stay at t, or nil.
func (p *phone) current(t time.Time) *stay {
	for i := len(p.stays) - 1; i >= 0; i-- {
		s := &p.stays[i]
		if !t.Before(s.from) && t.Before(s.to) {
			return s
		}
	}
	return nil
}

// end stops the phone at t (seized).
func (p *phone) end(t time.Time) {
	if s := p.current(t); s != nil {
		s.to = t
	}
	for i := range p.stays {
		if p.stays[i].from.After(t) {
			p.stays[i].to = p.stays[i].from
		}
	}
}

// sim returns the SIM in the handset at t.
func (p *phone) sim(t time.Time) string {
	i := 0
	for j, from := range p.simFrom {
		if !t.Before(from) {
			i = j
		}
	}
	return p.sims[i]
}

// works reports whether the phone is used on day d (staff work five days out of seven).
func (p *phone) works(d int) bool { return p.rota < 0 || (d+p.rota)%7 < 5 }

// flight is a drone flight over a facility.
type flight struct {
	fac *world.Facility
	at  time.Time
}

// Generator produces the events of one simulation day by day. It is not safe for concurrent
// use; call Next until it reports the end.
type Generator struct {
	opt   Options
	world *world.World
	cat   *identity.Catalogue
	start time.Time
	end   time.Time
	day   int
	// phones are the handsets that transmit day after day (contraband, staff, planted).
	phones []*phone
	// byFacility indexes phones by the facilities they stay at (searches, bursts).
	byFacility map[*world.Facility][]*phone
	visitors   map[*world.Facility][]*visitor
	// flights are every drone flight by facility (background and planted), sorted, so that
	// new phones arrive away from them; bgFlights are the background's, emitted by day.
	flights   map[*world.Facility][]time.Time
	bgFlights []flight
	// pending counts the contraband phones due at a facility that wait for a day without a
	// drone (a phone arriving after a drone is a drop, which the background never has).
	pending     map[*world.Facility]int
	scenarios   []scenario
	truth       Truth
	usedIMEI    map[string]bool
	taken       map[string][]*world.Facility
	invalidSent int
	total       int
	// late holds events that belong to a later day (a drone track crossing midnight).
	late []event.Detector
}

// scenario is a planted pattern: plan runs once before day 0, day once per day.
type scenario interface {
	name() string
	plan(g *Generator, rng *rand.Rand) error
	day(g *Generator, d int, rng *rand.Rand, emit func(event.Detector))
}

// New prepares a simulation of the world with these options.
func New(w *world.World, opt Options) (*Generator, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	start := opt.Start.UTC().Truncate(day)
	g := &Generator{
		opt:        opt,
		world:      w,
		cat:        identity.NewCatalogue(w.Ref.Models(), supplierTACs()),
		start:      start,
		end:        start.AddDate(0, 0, opt.Days),
		byFacility: map[*world.Facility][]*phone{},
		visitors:   map[*world.Facility][]*visitor{},
		flights:    map[*world.Facility][]time.Time{},
		pending:    map[*world.Facility]int{},
		usedIMEI:   map[string]bool{},
		taken:      map[string][]*world.Facility{},
	}
	g.truth = Truth{Start: g.start, End: g.end}
	g.initBackground()
	// Scenarios are planned in the order of Scenarios, whatever the order asked: the drone
	// scenario first, so that the phones of the others arrive away from its flights.
	for _, name := range Scenarios {
		if !slices.Contains(opt.Scenarios, name) {
			continue
		}
		s := newScenario(name)
		if err := s.plan(g, g.rng("plan:"+name, 0)); err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		g.scenarios = append(g.scenarios, s)
	}
	return g, nil
}

// Truth returns what the scenarios planted.
func (g *Generator) Truth() Truth { return g.truth }

// Start and End bound the simulated period.
func (g *Generator) Start() time.Time { return g.start }

// End is the event time at which the simulation stops.
func (g *Generator) End() time.Time { return g.end }

// Days is the number of simulated days.
func (g *Generator) Days() int { return g.opt.Days }

// Invalid is the number of events made invalid on purpose so far.
func (g *Generator) Invalid() int { return g.invalidSent }

// rng returns a random source for one purpose and day, independent of every other.
func (g *Generator) rng(purpose string, day int) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", purpose, day)
	return rand.New(rand.NewPCG(g.opt.Seed, h.Sum64()))
}

// newIMEI returns an IMEI of the TAC never used before in this simulation, its serial in
// block (0 to 999; negative: any block), or from serial on when serial is not negative.
func (g *Generator) newIMEI(rng *rand.Rand, tac string, block, serial int) string {
	for tries := 0; ; tries++ {
		s := serial
		switch {
		case serial >= 0:
			serial = (serial + 1) % 1_000_000
		case block >= 0 && tries < 50:
			s = block*1000 + rng.IntN(1000)
		default:
			s = rng.IntN(1_000_000) // the block is full: another one
		}
		imei := identity.IMEI(tac, s)
		if !g.usedIMEI[imei] {
			g.usedIMEI[imei] = true
			return imei
		}
	}
}

// newPhone makes a phone of the TAC with a new identity and its own SIM, its serial from the
// TAC's production around day made (days from the start, negative before it).
func (g *Generator) newPhone(rng *rand.Rand, tac string, made float64, rate float64, prof profile) *phone {
	p := &phone{
		imei:     g.newIMEI(rng, tac, g.cat.Block(rng, tac, made), -1),
		tac:      tac,
		sims:     []string{identity.IMSI(rng)},
		rate:     rate,
		profile:  prof,
		rota:     -1,
		outcome:  event.OutcomeBlocked,
		rat:      []event.RAT{event.RAT2G, event.RAT4G, event.RAT4G, event.RAT3G}[rng.IntN(4)],
		seizable: prof == profileNight,
	}
	for range 1 + rng.IntN(4) {
		p.contacts = append(p.contacts, identity.MSISDN(rng))
	}
	return p
}

// addPhone puts a phone in the simulation: it transmits from its stays on.
func (g *Generator) addPhone(p *phone) {
	g.phones = append(g.phones, p)
	for _, s := range p.stays {
		g.index(p, s.fac)
	}
}

// addStay adds a stay to a phone already in the simulation.
func (g *Generator) addStay(p *phone, s stay) {
	p.stays = append(p.stays, s)
	g.index(p, s.fac)
}

func (g *Generator) index(p *phone, f *world.Facility) {
	if !slices.Contains(g.byFacility[f], p) {
		g.byFacility[f] = append(g.byFacility[f], p)
	}
}

// Next returns the events of the next day, sorted by observed time, and false after the last
// day.
func (g *Generator) Next() (day int, events []event.Detector, ok bool) {
	if g.day >= g.opt.Days {
		return g.day, nil, false
	}
	d := g.day
	g.day++
	dayStart := g.start.AddDate(0, 0, d)
	dayEnd := dayStart.Add(24 * time.Hour)
	var out, late []event.Detector
	for _, e := range g.late {
		if e.ObservedAt.Before(dayEnd) {
			out = append(out, e)
		} else {
			late = append(late, e)
		}
	}
	emit := func(e event.Detector) {
		if e.ObservedAt.Before(dayEnd) {
			out = append(out, e)
		} else if e.ObservedAt.Before(g.end) {
			late = append(late, e)
		}
	}

	g.backgroundDay(d, dayStart, emit)
	for _, s := range g.scenarios {
		s.day(g, d, g.rng("day:"+s.name(), d), emit)
	}
	rng := g.rng("phones", d)
	for _, p := range g.phones {
		g.phoneDay(p, d, dayStart, rng, emit)
	}

	g.late = late
	out = sortByTime(out)
	inv := g.rng("invalid", d)
	for i := range out {
		out[i].EventID = fmt.Sprintf("%s-d%03d-%s", g.opt.RunID, d, Letters(uint64(i)))
		if g.opt.InvalidRatio > 0 && out[i].RSSIdBm != nil && inv.Float64() < g.opt.InvalidRatio {
			// A faulty sensor: out of the contract's range, ingest must reject it.
			out[i].RSSIdBm = ptr(-250.0)
			g.invalidSent++
		}
	}
	g.total += len(out)
	return d, out, true
}

// sortByTime returns the events sorted by observed time, then sensor, then emission order (a
// permutation is sorted: the events themselves are large to move).
func sortByTime(evs []event.Detector) []event.Detector {
	idx := make([]int32, len(evs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &evs[i], &evs[j]
		if c := a.ObservedAt.Compare(b.ObservedAt.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.SensorID, b.SensorID); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	})
	out := make([]event.Detector, len(evs))
	for k, i := range idx {
		out[k] = evs[i]
	}
	return out
}

// phoneDay emits a phone's transmissions of one day.
func (g *Generator) phoneDay(p *phone, d int, dayStart time.Time, rng *rand.Rand, emit func(event.Detector)) {
	dayEnd := dayStart.Add(24 * time.Hour)
	for i := range p.stays {
		s := &p.stays[i]
		from, to := maxTime(s.from, dayStart), minTime(s.to, dayEnd)
		if !from.Before(to) {
			continue
		}
		if s.announce && !s.from.Before(dayStart) && s.from.Before(dayEnd) {
			if mas := s.fac.MASFor(s.zone); mas != nil {
				emit(g.masEvent(p, mas, s.zone, event.KindMASAttach, s.from, rng))
			}
		}
		if !p.works(d) {
			continue
		}
		n := poisson(rng, p.rate*to.Sub(from).Hours()/24)
		for range n {
			if t, ok := sampleTime(rng, p.profile, from, to); ok {
				g.transmit(p, s, t, rng, emit)
			}
		}
	}
}

// transmit emits what the sensors of the stay's zone see of one transmission: the MAS
// attempt (with identities) when the zone has a MAS, and an RF burst when an RF detector
// covers the zone.
func (g *Generator) transmit(p *phone, s *stay, t time.Time, rng *rand.Rand, emit func(event.Detector)) {
	kind := event.KindMASAttach
	switch r := rng.IntN(100); {
	case r < 35:
		kind = event.KindSMSAttempt
	case r < 60:
		kind = event.KindCallAttempt
	case r < 75:
		kind = event.KindDataAttempt
	}
	if mas := s.fac.MASFor(s.zone); mas != nil {
		emit(g.masEvent(p, mas, s.zone, kind, t, rng))
	}
	if rfs := s.fac.RF[s.zone]; len(rfs) > 0 && kind != event.KindMASAttach && rng.IntN(10) < 6 {
		emit(rfEvent(rfs[rng.IntN(len(rfs))], s.zone, p.rat, t.Add(time.Duration(rng.IntN(900))*time.Millisecond), rng))
	}
}

// signal emits one MAS event of the phone at t in its stay's zone: planted patterns time
// their facts with it.
func (g *Generator) signal(p *phone, kind event.Kind, t time.Time, rng *rand.Rand, emit func(event.Detector)) {
	s := p.current(t)
	if s == nil {
		panic(fmt.Sprintf("traffic: planted phone has no stay at %s", t))
	}
	emit(g.masEvent(p, s.fac.MASFor(s.zone), s.zone, kind, t, rng))
}

// droneFree reports whether a phone first seen at f at t is far from every drone flight
// there: none from 6 hours before t's day to 6 hours after it (a phone that arrives after a
// drone is a drop, which only planted patterns make).
func (g *Generator) droneFree(f *world.Facility, t time.Time) bool {
	d0 := t.Truncate(day)
	for _, ft := range g.flights[f] {
		if !ft.Before(d0.Add(-6*time.Hour)) && ft.Before(d0.Add(30*time.Hour)) {
			return false
		}
	}
	return true
}

// addFlight records a drone flight over f.
func (g *Generator) addFlight(f *world.Facility, t time.Time) {
	i, _ := slices.BinarySearchFunc(g.flights[f], t, time.Time.Compare)
	g.flights[f] = slices.Insert(g.flights[f], i, t)
}

// visitTime returns a visiting hour (12:00 to 16:00 UTC) of f on the first visiting day at
// or after t's day on which a new phone is clear of drone flights.
func (g *Generator) visitTime(f *world.Facility, t time.Time, rng *rand.Rand) time.Time {
	d := t.Truncate(day)
	for range 60 {
		at := d.Add(12*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour)))).Truncate(time.Minute)
		if visitingDay(f, d.Weekday()) && !at.Before(t) && g.droneFree(f, at) {
			return at
		}
		d = d.Add(day)
	}
	return t
}

// visitingDay reports whether f receives visitors on that weekday: every day but Sunday and
// one weekday of its own.
func visitingDay(f *world.Facility, wd time.Weekday) bool {
	h := fnv.New32a()
	h.Write([]byte(f.ID))
	closed := time.Weekday(1 + h.Sum32()%6)
	return wd != time.Sunday && wd != closed
}

// guarded reports whether a planted phone that no search may find (its scenario decides
// what happens to it) is in the zone from 24 hours before t to 84 hours after.
func (g *Generator) guarded(f *world.Facility, zone string, t time.Time) bool {
	for _, p := range g.byFacility[f] {
		if p.seizable {
			continue
		}
		for _, s := range p.stays {
			if s.fac == f && s.zone == zone && s.from.Before(t.Add(84*time.Hour)) && s.to.After(t.Add(-24*time.Hour)) {
				return true
			}
		}
	}
	return false
}

// sampleTime draws a time in [from, to) following the profile's hourly weights.
func sampleTime(rng *rand.Rand, prof profile, from, to time.Time) (time.Time, bool) {
	w := hourWeights[prof]
	top := slices.Max(w[:])
	span := to.Sub(from)
	for range 24 {
		t := from.Add(time.Duration(rng.Int64N(int64(span))))
		if rng.Float64()*top < w[t.Hour()] {
			return t, true
		}
	}
	return time.Time{}, false
}

// poisson draws a Poisson variate of mean lambda (Knuth for small means, normal otherwise).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
