package traffic

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
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

// masEvent is one attempt seen by a managed access system.
func (g *Generator) masEvent(p *phone, mas *reference.Sensor, zone string, kind event.Kind, t time.Time, rng *rand.Rand) event.Detector {
	band, freq := bandOf(p.rat, rng)
	e := event.Detector{
		Common: event.Common{
			SensorID:   mas.ID,
			ObservedAt: event.NewTime(t),
			Kind:       kind,
			Zone:       zone,
			RAT:        p.rat,
			Band:       band,
			FreqMHz:    ptr(freq),
			RSSIdBm:    ptr(float64(-95 + rng.IntN(50))),
			Outcome:    p.outcome,
		},
		IMEI: p.imei,
		IMSI: p.sims[p.sim],
	}
	switch kind {
	case event.KindCallAttempt:
		e.DurationMs = ptr(int64(rng.IntN(45_000)))
		if p.outcome == event.OutcomeBlocked && rng.IntN(400) == 0 {
			e.MSISDNDialed, e.Outcome = "112", event.OutcomeEmergencyAllowed
		} else {
			e.MSISDNDialed = p.contacts[rng.IntN(len(p.contacts))]
		}
	case event.KindSMSAttempt:
		e.MSISDNDialed = p.contacts[rng.IntN(len(p.contacts))]
	case event.KindDataAttempt:
		e.DurationMs = ptr(int64(rng.IntN(120_000)))
		e.DataBytes = ptr(int64(rng.IntN(2_000_000)))
	}
	return e
}

// rfEvent is a burst seen by an RF detector, which cannot tell who transmitted.
func rfEvent(s *reference.Sensor, zone string, rat event.RAT, t time.Time, rng *rand.Rand) event.Detector {
	band, freq := bandOf(rat, rng)
	bw := map[event.RAT]float64{event.RAT2G: 200, event.RAT3G: 5000, event.RAT4G: 10000, event.RAT5G: 20000}[rat]
	return event.Detector{Common: event.Common{
		SensorID:     s.ID,
		ObservedAt:   event.NewTime(t),
		Kind:         event.KindRFBurst,
		Zone:         zone,
		Band:         band,
		FreqMHz:      ptr(freq),
		RSSIdBm:      ptr(float64(-80 + rng.IntN(45))),
		DurationMs:   ptr(int64(50 + rng.IntN(20_000))),
		BandwidthKHz: ptr(bw),
	}}
}

// bandOf picks a French band for a radio access technology and a centre frequency in it.
func bandOf(rat event.RAT, rng *rand.Rand) (string, float64) {
	type b struct {
		name string
		freq float64
	}
	var bands []b
	switch rat {
	case event.RAT2G:
		bands = []b{{"GSM900", 935}, {"DCS1800", 1805}}
	case event.RAT3G:
		bands = []b{{"B1", 2110}, {"B8", 925}}
	case event.RAT5G:
		bands = []b{{"n78", 3500}, {"n28", 758}}
	default:
		bands = []b{{"B20", 791}, {"B3", 1805}, {"B7", 2620}, {"B28", 758}}
	}
	x := bands[rng.IntN(len(bands))]
	return x.name, x.freq + float64(rng.IntN(100))/10
}

// sampleTime draws a time in [from, to) following the profile's hourly weights.
func sampleTime(rng *rand.Rand, prof profile, from, to time.Time) (time.Time, bool) {
	w := hourWeights[prof]
	span := to.Sub(from)
	for range 24 {
		t := from.Add(time.Duration(rng.Int64N(int64(span))))
		if rng.Float64()*11 < w[t.Hour()] {
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

func ptr[T any](v T) *T { return &v }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cellLabel makes a cell number in a zone, e.g. "B-214" for zone B-2.
func cellLabel(zone string, rng *rand.Rand) string {
	b, fl, ok := strings.Cut(zone, "-")
	if !ok {
		fl = "0"
	}
	return fmt.Sprintf("%s-%s%02d", b, fl, 1+rng.IntN(40))
}

// Letters writes n in base 26 with the letters a to z. Event ids use it rather than digits:
// ingest redacts runs of six or more digits in dead-letter records (they could be an IMEI or
// a phone number), and an event id must stay recognisable there.
func Letters(n uint64) string {
	var b [14]byte
	i := len(b)
	for {
		i--
		b[i] = byte('a' + n%26)
		n /= 26
		if n == 0 {
			return string(b[i:])
		}
	}
}
