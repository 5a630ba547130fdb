package traffic

// The background: ordinary activity of every facility, which no correlation rule should
// report. Contraband, staff and visitor phones stay at their facility with their own SIM;
// drones fly without dropping anything; searches find a phone wherever phones are; seized
// phones never transmit again. Transfers, SIM swaps, drops and missed searches happen only
// in planted scenarios.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/simulator/internal/identity"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// Background volumes per facility of size 1 at scale 1.
const (
	contrabandPerFacility = 30.0  // phones hidden in cells at any time
	staffPerFacility      = 12.0  // staff phones allowed by the MAS
	visitsPerWeek         = 120.0 // visits to the visiting room
	visitorRegularity     = 0.85  // the chance a visitor comes on their day of the week
	visitorWeeks          = 52.0  // how many weeks a visitor keeps visiting, on average
	daysToRenew           = 60.0  // contraband phones arrive to replace the seized ones
	searchesPerDay        = 0.3   // cell searches per day
	dronesPerDay          = 0.2   // drone flights per day at a facility with drone detection (~6 a month)
	jammerAlarmsPerDay    = 0.01  // alarms per jammer per day
)

// visitor is someone who visits an inmate of one facility on the same weekday and at about
// the same hour, most weeks, with the same phone.
type visitor struct {
	p       *phone
	weekday time.Weekday
	arrive  time.Duration // after midnight UTC
}

// initBackground creates the phones present from the start (contraband in the cells, the
// staff's phones), the facilities' regular visitors and every background drone flight.
func (g *Generator) initBackground() {
	rng := g.rng("init", 0)
	for _, f := range g.world.Facilities {
		for range poisson(rng, f.Size*contrabandPerFacility*g.opt.Scale) {
			p := g.contraband(rng, -180*rng.Float64())
			p.stays = []stay{{fac: f, zone: f.CellZones[rng.IntN(len(f.CellZones))], from: g.start, to: g.end}}
			g.addPhone(p)
		}
		if f.HasMAS() {
			// Staff phones, allowed by the MAS, in the visiting-room building: day shifts,
			// afternoon shifts, fewer night shifts, five days on, two off.
			for i := range max(1, poisson(rng, f.Size*staffPerFacility*g.opt.Scale)) {
				prof := []profile{profileMorning, profileMorning, profileAfternoon, profileAfternoon, profileNightShift}[rng.IntN(5)]
				p := g.newPhone(rng, g.cat.Draw(rng, identity.Personal), -700*rng.Float64(), 3, prof)
				p.outcome, p.rat, p.rota = event.OutcomeAllowed, event.RAT4G, rng.IntN(7)
				p.stays = []stay{{fac: f, zone: "visiting", from: g.start, to: g.end}}
				if i == 0 {
					// Someone is on the morning shift of the first day: the facility's data
					// starts with the period, as the rules' history is counted from it.
					p.profile, p.rota = profileMorning, 0
					p.stays[0].from, p.stays[0].announce = g.start.Add(6*time.Hour), true
				}
				g.addPhone(p)
			}
		}
		if f.MAS["visiting"] != nil || len(f.RF["visiting"]) > 0 {
			for range poisson(rng, f.Size*visitsPerWeek*g.opt.Scale/visitorRegularity) {
				g.visitors[f] = append(g.visitors[f], g.newVisitor(rng, f, -1))
			}
		}
	}
	frng := g.rng("flights", 0)
	for d := 2; d < g.opt.Days; d++ {
		for _, f := range g.world.Facilities {
			if len(f.Drones) == 0 {
				continue
			}
			for range poisson(frng, dronesPerDay) {
				// At night, between 20:00 and 04:00 UTC.
				t := g.start.AddDate(0, 0, d).Add(20*time.Hour + time.Duration(frng.Int64N(int64(8*time.Hour))))
				if t.Before(g.end) {
					g.bgFlights = append(g.bgFlights, flight{f, t})
					g.addFlight(f, t)
				}
			}
		}
	}
	slices.SortStableFunc(g.bgFlights, func(a, b flight) int { return a.at.Compare(b.at) })
}

// contraband makes a contraband phone (not yet placed), made around day made.
func (g *Generator) contraband(rng *rand.Rand, made float64) *phone {
	return g.newPhone(rng, g.cat.Draw(rng, identity.Contraband), made, 4+rng.Float64()*6, profileNight)
}

// newVisitor makes a regular visitor of f; weekday < 0 draws one of f's visiting days.
func (g *Generator) newVisitor(rng *rand.Rand, f *world.Facility, weekday time.Weekday) *visitor {
	for weekday < 0 || !visitingDay(f, weekday) {
		weekday = time.Weekday(rng.IntN(7))
	}
	p := g.newPhone(rng, g.cat.Draw(rng, identity.Personal), float64(g.day)-700*rng.Float64(), 0, profileAfternoon)
	if rng.IntN(10) == 0 {
		p.sims[0] = identity.ForeignIMSI(rng)
	}
	return &visitor{p: p, weekday: weekday, arrive: 12*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour)))}
}

// backgroundDay emits the day's visits, drones, jammer alarms and searches, and brings in
// the new contraband phones.
func (g *Generator) backgroundDay(d int, dayStart time.Time, emit func(event.Detector)) {
	rng := g.rng("background", d)
	for _, f := range g.world.Facilities {
		g.visits(f, dayStart, rng, emit)
		g.pending[f] += poisson(rng, f.Size*contrabandPerFacility*g.opt.Scale/daysToRenew)
		for n := g.pending[f]; n > 0; n-- {
			// Most come in through the visiting room in the afternoon, some over the wall at
			// night; a phone switched on after a drone flew over would be a drop: it waits.
			t := dayStart.Add(12*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour))))
			if rng.IntN(10) < 3 {
				t = dayStart.Add(time.Duration(rng.Int64N(int64(3 * time.Hour))))
			}
			if !g.droneFree(f, t) {
				break
			}
			p := g.contraband(rng, float64(d)-120*rng.Float64())
			p.stays = []stay{{fac: f, zone: f.CellZones[rng.IntN(len(f.CellZones))], from: t, to: g.end, announce: true}}
			g.addPhone(p)
			g.pending[f]--
		}
		for _, j := range f.Jammers {
			if rng.Float64() < jammerAlarmsPerDay {
				jammerAlarm(j, dayStart, rng, emit)
			}
		}
		if f.Search != nil {
			for range poisson(rng, searchesPerDay*f.Size*math.Min(1, g.opt.Scale*5)) {
				t := dayStart.Add(7*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour))))
				zone := f.CellZones[rng.IntN(len(f.CellZones))]
				if g.guarded(f, zone, t) {
					continue // a planted phone is there: its scenario decides what is found
				}
				g.search(f, zone, t, searchSpec{id: fmt.Sprintf("s-%s-%d-%d", f.ID, d, rng.IntN(1000)), find: 0.3, read: 0.7, foundBy: "cell_search"}, rng, emit)
			}
		}
	}
	drng := g.rng("drones", d)
	dayEnd := dayStart.Add(day)
	for _, fl := range g.bgFlights {
		if !fl.at.Before(dayStart) && fl.at.Before(dayEnd) {
			droneFlight(fl.fac, fl.at, "", drng, emit)
		}
	}
}

// visits emits the day's visits to f: each regular visitor of the weekday comes most weeks,
// seen by the visiting room's MAS (blocked) and RF detectors for about an hour. Now and then
// a visitor stops coming and someone new starts.
func (g *Generator) visits(f *world.Facility, dayStart time.Time, rng *rand.Rand, emit func(event.Detector)) {
	mas, rfs := f.MAS["visiting"], f.RF["visiting"]
	for i, v := range g.visitors[f] {
		if v.weekday != dayStart.Weekday() {
			continue
		}
		if rng.Float64() < 1/visitorWeeks {
			v = g.newVisitor(rng, f, v.weekday)
			g.visitors[f][i] = v
		}
		if rng.Float64() >= visitorRegularity {
			continue
		}
		arrive := dayStart.Add(v.arrive + time.Duration(rng.Int64N(int64(40*time.Minute))) - 20*time.Minute)
		for range 1 + rng.IntN(3) {
			t := arrive.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			if mas != nil {
				emit(g.masEvent(v.p, mas, "visiting", event.KindMASAttach, t, rng))
			}
			if len(rfs) > 0 && rng.IntN(3) == 0 {
				emit(rfEvent(rfs[rng.IntN(len(rfs))], "visiting", v.p.rat, t, rng))
			}
		}
	}
}

// searchSpec describes a search: its id, the chance of finding each hidden phone, of reading
// a found phone's IMEI, how items were found, the phones it finds for sure (a planted
// pattern's) and whether it finds nothing at all (a missed search, planted).
type searchSpec struct {
	id         string
	find, read float64
	foundBy    string
	must       []*phone
	nothing    bool
}

// search is a search of one zone at t: each phone hidden there is found with probability
// find, and at least one when there are some (a search finding nothing where phones are is
// a missed search, which only a planted pattern makes); a found phone whose IMEI staff read
// is reported on its own; then one summary event with the counts. The found phones are
// seized: they never transmit again.
func (g *Generator) search(f *world.Facility, zone string, t time.Time, spec searchSpec, rng *rand.Rand, emit func(event.Detector)) (found []*phone) {
	found = slices.Clone(spec.must)
	var missed []*phone
	for _, p := range g.byFacility[f] {
		if !p.seizable || spec.nothing || slices.Contains(found, p) {
			continue
		}
		if s := p.current(t); s != nil && s.fac == f && s.zone == zone {
			if rng.Float64() < spec.find {
				found = append(found, p)
			} else {
				missed = append(missed, p)
			}
		}
	}
	if len(found) == 0 && len(missed) > 0 {
		found = append(found, missed[0])
	}
	var minis int64
	for _, p := range found {
		if !slices.Contains(spec.must, p) {
			p.end(t) // a planted phone's stays are its scenario's
		}
		one := int64(0)
		if p.mini {
			minis++
			one = 1
		}
		if slices.Contains(spec.must, p) {
			emit(seizure(f, zone, cellLabel(zone, rng), t.Add(2*time.Minute),
				event.Seizure{Phones: 1, MiniPhones: one, SIMs: 1, SearchID: spec.id, FoundBy: spec.foundBy}, p))
		} else if rng.Float64() < spec.read {
			emit(seizure(f, zone, cellLabel(zone, rng), t.Add(time.Duration(rng.IntN(600))*time.Second),
				event.Seizure{Phones: 1, MiniPhones: one, SIMs: 1, SearchID: spec.id, FoundBy: spec.foundBy}, p))
		}
	}
	extra, sims, acc := int64(0), int64(0), int64(0)
	if !spec.nothing {
		extra, acc = int64(poisson(rng, 0.4)), int64(rng.IntN(3))
		sims = int64(len(found)) + extra + int64(rng.IntN(3))
	}
	emit(seizure(f, zone, cellLabel(zone, rng), t.Add(15*time.Minute),
		event.Seizure{Phones: int64(len(found)) + extra, MiniPhones: minis, SIMs: sims, Accessories: &acc, SearchID: spec.id, FoundBy: spec.foundBy}, nil))
	return found
}

// seizure is an item_seized event; with a phone, it carries the identities staff read.
func seizure(f *world.Facility, zone, cell string, t time.Time, s event.Seizure, p *phone) event.Detector {
	e := event.Detector{Common: event.Common{
		SensorID:   f.Search.ID,
		ObservedAt: event.NewTime(t),
		Kind:       event.KindItemSeized,
		Zone:       zone,
		Cell:       cell,
		Seizure:    &s,
	}}
	if p != nil {
		e.IMEI, e.IMSI = p.imei, p.sim(t)
	}
	return e
}

// jammerAlarm emits a jammer fault and, usually, its restoration hours later.
func jammerAlarm(j *reference.Sensor, dayStart time.Time, rng *rand.Rand, emit func(event.Detector)) {
	alarms := []struct{ alarm, severity string }{{"output_low", "warning"}, {"fault", "critical"}, {"tamper", "critical"}, {"power_loss", "critical"}, {"overheat", "warning"}}
	a := alarms[rng.IntN(len(alarms))]
	t := dayStart.Add(time.Duration(rng.Int64N(int64(20 * time.Hour))))
	bands := []string{"GSM900", "DCS1800", "B20", "B3"}[:1+rng.IntN(4)]
	emit(event.Detector{Common: event.Common{SensorID: j.ID, ObservedAt: event.NewTime(t), Kind: event.KindJammerAlarm, Zone: j.Zone,
		Jammer: &event.Jammer{Alarm: a.alarm, Severity: a.severity, Bands: bands}}})
	if rng.IntN(4) > 0 {
		emit(event.Detector{Common: event.Common{SensorID: j.ID, ObservedAt: event.NewTime(t.Add(time.Duration(1+rng.IntN(3)) * time.Hour)), Kind: event.KindJammerAlarm, Zone: j.Zone,
			Jammer: &event.Jammer{Alarm: "restored", Severity: "info", Bands: bands}}})
	}
}

// droneFlight emits a drone's track over a few minutes as the facility's drone detectors see
// it, approaching the facility from 600 m away. A uasID makes it broadcast Remote ID.
func droneFlight(f *world.Facility, t time.Time, uasID string, rng *rand.Rand, emit func(event.Detector)) {
	heading := rng.Float64() * 360
	rad := heading * math.Pi / 180
	n := 3 + rng.IntN(6)
	sources := []string{"rf", "radar", "rf", "acoustic", "optical"}
	for i := range n {
		d := 600 * (1 - float64(i)/float64(n)) // metres from the facility's reference point
		lat := f.Lat - d*math.Cos(rad)/111_000
		lon := f.Lon - d*math.Sin(rad)/(111_000*math.Cos(f.Lat*math.Pi/180))
		dr := &event.Drone{
			DetectionSource: sources[rng.IntN(len(sources))],
			Lat:             math.Round(lat*1e6) / 1e6,
			Lon:             math.Round(lon*1e6) / 1e6,
			HeightM:         ptr(float64(20 + rng.IntN(60))),
			SpeedMps:        ptr(float64(3 + rng.IntN(12))),
			HeadingDeg:      ptr(math.Round(heading*10) / 10),
		}
		if uasID != "" {
			dr.DetectionSource = "remote_id"
			dr.RemoteID = &event.RemoteID{UASID: uasID, UASIDType: "serial_number", UAType: "helicopter_or_multirotor", OperationalStatus: "airborne"}
		}
		s := f.Drones[rng.IntN(len(f.Drones))]
		emit(event.Detector{Common: event.Common{SensorID: s.ID, ObservedAt: event.NewTime(t.Add(time.Duration(i*40+rng.IntN(20)) * time.Second)),
			Kind: event.KindDroneSeen, Zone: s.Zone, Drone: dr}})
	}
}
