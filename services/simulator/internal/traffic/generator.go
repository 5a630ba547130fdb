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

// profile is when a phone is used.
type profile int

const (
	// profileNight: contraband phones, mostly between 21:00 and 02:00, some by day.
	profileNight profile = iota
	// profileShift: staff phones during day shifts.
	profileShift
)

// hourWeights are the relative chances of each UTC hour per profile (France is UTC+1 or +2).
var hourWeights = map[profile][24]float64{
	profileNight: {9, 7, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 2, 3, 4, 6, 9, 11, 11},
	profileShift: {0, 0, 0, 0, 0, 1, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 4, 2, 1, 0, 0, 0, 0},
}

// stay is a phone's presence in one zone of one facility over [from, to).
type stay struct {
	fac      *world.Facility
	zone     string
	from, to time.Time
}

// phone is one handset the simulation follows.
type phone struct {
	imei, tac string
	sims      []string
	sim       int
	contacts  []string
	stays     []stay
	// rate is the number of transmissions per day.
	rate    float64
	profile profile
	outcome event.Outcome
	rat     event.RAT
	// simSwap is the daily chance of changing SIM.
	simSwap float64
	// seizable phones can be found in searches and moved by transfers.
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

// end stops the phone at t (seized, or leaving with a visitor).
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

// Generator produces the events of one simulation day by day. It is not safe for concurrent
// use; call Next until it reports the end.
type Generator struct {
	opt    Options
	world  *world.World
	start  time.Time
	end    time.Time
	day    int
	phones []*phone
	// byFacility indexes the seizable phones by facility for searches and bursts.
	commonTACs  []string
	cheapTACs   []string
	scenarios   []scenario
	truth       Truth
	rngInit     *rand.Rand
	usedIMEI    map[string]bool
	nextSerial  map[string]int
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
	start := opt.Start.UTC().Truncate(24 * time.Hour)
	g := &Generator{
		opt:        opt,
		world:      w,
		start:      start,
		end:        start.AddDate(0, 0, opt.Days),
		rngInit:    rand.New(rand.NewPCG(opt.Seed, 0x5eed)),
		usedIMEI:   map[string]bool{},
		nextSerial: map[string]int{},
	}
	g.truth = Truth{Start: g.start, End: g.end}
	g.pickTACs()
	g.initBackground()
	for _, name := range opt.Scenarios {
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

// allowListedTACs are the common consumer models of the correlation rules' allow-list
// (schemas/rules): visitors' and staff's phones are of these models, as most phones are.
var allowListedTACs = []string{"35067889", "35104463", "35292511", "35657310"}

// pickTACs chooses the background models: common smartphones (visitors, staff) and a wide
// pool of cheap handsets (contraband, so diverse that no single model stands out), from the
// reference TACs, deterministically.
func (g *Generator) pickTACs() {
	var cheap []string
	for _, m := range g.world.Ref.Models() {
		if !m.Mini && (m.Manufacturer == "Nokia" || m.Manufacturer == "Alcatel" || m.Manufacturer == "Huawei" || m.Manufacturer == "Samsung") {
			cheap = append(cheap, m.TAC)
		}
	}
	if len(cheap) < 100 {
		// A reference without those makers (a test fixture): invented TACs, unknown models.
		cheap = cheap[:0]
		for i := range 1500 {
			cheap = append(cheap, fmt.Sprintf("352%05d", 10000+i*7))
		}
	}
	g.commonTACs = allowListedTACs
	g.cheapTACs = pick(g.rngInit, cheap, 1500)
}

// pick returns n distinct elements of xs, sorted (all of them when there are fewer).
func pick(rng *rand.Rand, xs []string, n int) []string {
	xs = slices.Clone(xs)
	rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	if len(xs) > n {
		xs = xs[:n]
	}
	slices.Sort(xs)
	return xs
}

// newIMEI returns an IMEI of the TAC never used before in this simulation. serial < 0 picks
// a random serial.
func (g *Generator) newIMEI(rng *rand.Rand, tac string, serial int) string {
	for {
		s := serial
		if s < 0 {
			s = rng.IntN(1_000_000)
		}
		imei := identity.IMEI(tac, s)
		if !g.usedIMEI[imei] {
			g.usedIMEI[imei] = true
			return imei
		}
		if serial >= 0 {
			serial++
		}
	}
}

// newPhone makes a phone with a new identity.
func (g *Generator) newPhone(rng *rand.Rand, tac string, serial int, rate float64, prof profile) *phone {
	p := &phone{
		imei:     g.newIMEI(rng, tac, serial),
		tac:      tac,
		sims:     []string{identity.IMSI(rng)},
		rate:     rate,
		profile:  prof,
		outcome:  event.OutcomeBlocked,
		rat:      []event.RAT{event.RAT2G, event.RAT4G, event.RAT4G, event.RAT3G}[rng.IntN(4)],
		simSwap:  0.02,
		seizable: prof == profileNight,
	}
	for range 1 + rng.IntN(4) {
		p.contacts = append(p.contacts, identity.MSISDN(rng))
	}
	return p
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
		g.phoneDay(p, dayStart, rng, emit)
	}

	g.late = late
	slices.SortStableFunc(out, func(a, b event.Detector) int {
		if c := a.ObservedAt.Compare(b.ObservedAt.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.SensorID, b.SensorID)
	})
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

// phoneDay emits a phone's transmissions of one day.
func (g *Generator) phoneDay(p *phone, dayStart time.Time, rng *rand.Rand, emit func(event.Detector)) {
	dayEnd := dayStart.Add(24 * time.Hour)
	for i := range p.stays {
		s := &p.stays[i]
		from, to := maxTime(s.from, dayStart), minTime(s.to, dayEnd)
		if !from.Before(to) {
			continue
		}
		frac := to.Sub(from).Hours() / 24
		n := poisson(rng, p.rate*frac)
		for range n {
			t, ok := sampleTime(rng, p.profile, from, to)
			if !ok {
				continue
			}
			if rng.Float64() < p.simSwap/math.Max(p.rate, 1) {
				g.swapSIM(p, rng)
			}
			g.transmit(p, s, t, rng, emit)
		}
	}
}

// swapSIM gives the phone another SIM: a new one, or one it used before.
func (g *Generator) swapSIM(p *phone, rng *rand.Rand) {
	if len(p.sims) > 1 && rng.IntN(3) == 0 {
		p.sim = rng.IntN(len(p.sims))
		return
	}
	if rng.IntN(8) == 0 {
		p.sims = append(p.sims, identity.ForeignIMSI(rng))
	} else {
		p.sims = append(p.sims, identity.IMSI(rng))
	}
	p.sim = len(p.sims) - 1
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
