package traffic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/simulator/internal/identity"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// Background volumes per facility of size 1 at scale 1.
const (
	contrabandPerFacility = 25.0 // phones hidden in cells at any time
	staffPerFacility      = 12.0 // staff phones allowed by the MAS
	visitorsPerDay        = 20.0 // visitor phones seen in the visiting room
	daysToRenew           = 60.0 // contraband phones arrive to replace the seized ones
	searchesPerDay        = 0.3  // cell searches per day
	dronesPerDay          = 0.2  // drone flights per day at a facility with drone detection (~6 a month)
	jammerAlarmsPerDay    = 0.01 // alarms per jammer per day
	transfersPerDay       = 0.003
)

// initBackground creates the phones present from the start: contraband in the cells and the
// staff's phones.
func (g *Generator) initBackground() {
	rng := g.rng("init", 0)
	for _, f := range g.world.Facilities {
		for range poisson(rng, f.Size*contrabandPerFacility*g.opt.Scale) {
			g.addContraband(rng, f, g.start)
		}
		if !f.HasMAS() {
			continue
		}
		zone := "visiting"
		if f.MAS["visiting"] == nil {
			zone = f.MASZones()[0]
		}
		for range poisson(rng, f.Size*staffPerFacility*g.opt.Scale) {
			p := g.newPhone(rng, g.commonTACs[rng.IntN(len(g.commonTACs))], -1, 3, profileShift)
			p.outcome, p.simSwap, p.rat = event.OutcomeAllowed, 0, event.RAT4G
			p.stays = []stay{{fac: f, zone: zone, from: g.start, to: g.end}}
			g.phones = append(g.phones, p)
		}
	}
}

// addContraband puts a new contraband phone in a random cell zone of f from t on.
func (g *Generator) addContraband(rng *rand.Rand, f *world.Facility, t time.Time) *phone {
	tac := g.cheapTACs[rng.IntN(len(g.cheapTACs))]
	p := g.newPhone(rng, tac, -1, 4+rng.Float64()*6, profileNight)
	p.stays = []stay{{fac: f, zone: f.CellZones[rng.IntN(len(f.CellZones))], from: t, to: g.end}}
	g.phones = append(g.phones, p)
	return p
}

// backgroundDay emits the day's visitors, drones, jammer alarms and searches, and moves the
// contraband phones: arrivals, transfers, seizures.
func (g *Generator) backgroundDay(d int, dayStart time.Time, emit func(event.Detector)) {
	rng := g.rng("background", d)
	for _, f := range g.world.Facilities {
		if dayStart.Weekday() != time.Sunday {
			g.visitors(f, dayStart, rng, emit)
		}
		for range poisson(rng, f.Size*contrabandPerFacility*g.opt.Scale/daysToRenew) {
			g.addContraband(rng, f, dayStart.Add(time.Duration(rng.Int64N(int64(24*time.Hour)))))
		}
		for _, j := range f.Jammers {
			if rng.Float64() < jammerAlarmsPerDay {
				jammerAlarm(j, dayStart, rng, emit)
			}
		}
		if len(f.Drones) > 0 && d >= 2 {
			for range poisson(rng, dronesPerDay) {
				// Drops happen at night, between 20:00 and 04:00 UTC.
				t := dayStart.Add(20*time.Hour + time.Duration(rng.Int64N(int64(8*time.Hour))))
				droneFlight(f, t, "", rng, emit)
				if rng.Float64() < 0.15 {
					// A drop: one or two phones reach a yard and then a cell within hours.
					for range 1 + rng.IntN(2) {
						g.addContraband(rng, f, t.Add(time.Hour+time.Duration(rng.Int64N(int64(3*time.Hour)))))
					}
				}
			}
		}
		if f.Search != nil {
			for range poisson(rng, searchesPerDay*f.Size*math.Min(1, g.opt.Scale*5)) {
				t := dayStart.Add(7*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour))))
				zone := f.CellZones[rng.IntN(len(f.CellZones))]
				g.search(f, zone, t, searchSpec{id: fmt.Sprintf("s-%s-%d-%d", f.ID, d, rng.IntN(1000)), find: 0.3, read: 0.7, foundBy: "cell_search"}, rng, emit)
			}
		}
	}
	g.transfers(dayStart, rng)
}

// visitors emits the phones of one day's visitors: seen by the visiting room's MAS (blocked)
// and RF detectors during the afternoon visits, never again.
func (g *Generator) visitors(f *world.Facility, dayStart time.Time, rng *rand.Rand, emit func(event.Detector)) {
	mas, rfs := f.MAS["visiting"], f.RF["visiting"]
	if mas == nil && len(rfs) == 0 {
		return
	}
	for range poisson(rng, f.Size*visitorsPerDay*g.opt.Scale) {
		arrive := dayStart.Add(12*time.Hour + time.Duration(rng.Int64N(int64(4*time.Hour))))
		p := g.newPhone(rng, g.commonTACs[rng.IntN(len(g.commonTACs))], -1, 0, profileShift)
		if rng.IntN(10) == 0 {
			p.sims[0] = identity.ForeignIMSI(rng)
		}
		s := stay{fac: f, zone: "visiting", from: arrive, to: arrive.Add(time.Hour)}
		for range 1 + rng.IntN(3) {
			t := arrive.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			if mas != nil {
				emit(g.masEvent(p, mas, s.zone, event.KindMASAttach, t, rng))
			}
			if len(rfs) > 0 && rng.IntN(3) == 0 {
				emit(rfEvent(rfs[rng.IntN(len(rfs))], s.zone, p.rat, t, rng))
			}
		}
	}
}

// transfers moves a few contraband phones with their owners to another facility, usually of
// the same interregional directorate; the phone is silent during the journey.
func (g *Generator) transfers(dayStart time.Time, rng *rand.Rand) {
	for _, p := range g.phones {
		if !p.seizable || p.planted || rng.Float64() >= transfersPerDay {
			continue
		}
		t := dayStart.Add(6*time.Hour + time.Duration(rng.Int64N(int64(6*time.Hour))))
		s := p.current(t)
		if s == nil {
			continue
		}
		dest := g.world.Facilities[rng.IntN(len(g.world.Facilities))]
		for range 5 {
			if dest != s.fac && dest.DISP == s.fac.DISP {
				break
			}
			dest = g.world.Facilities[rng.IntN(len(g.world.Facilities))]
		}
		if dest == s.fac {
			continue
		}
		to := s.to
		s.to = t
		arrive := t.Add(4*time.Hour + time.Duration(rng.Int64N(int64(26*time.Hour))))
		p.stays = append(p.stays, stay{fac: dest, zone: dest.CellZones[rng.IntN(len(dest.CellZones))], from: arrive, to: to})
	}
}

// searchSpec describes a search: its id, the chance of finding each hidden phone, of reading
// a found phone's IMEI, the fewest phones found when there are some, and how items were found.
type searchSpec struct {
	id         string
	find, read float64
	minFound   int
	foundBy    string
}

// search is a search of one zone at t: each phone hidden there is found with probability
// find; a found phone whose IMEI staff read is reported on its own; then one summary event
// with the counts. The found phones are seized: they transmit no more.
func (g *Generator) search(f *world.Facility, zone string, t time.Time, spec searchSpec, rng *rand.Rand, emit func(event.Detector)) (found []*phone) {
	var missed []*phone
	for _, p := range g.phones {
		if !p.seizable {
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
	for len(found) < spec.minFound && len(missed) > 0 {
		found, missed = append(found, missed[0]), missed[1:]
	}
	searchID, foundBy := spec.id, spec.foundBy
	var minis int64
	for _, p := range found {
		p.end(t)
		one := int64(0)
		if p.mini {
			minis++
			one = 1
		}
		if rng.Float64() < spec.read {
			emit(seizure(f, zone, cellLabel(zone, rng), t.Add(time.Duration(rng.IntN(600))*time.Second),
				event.Seizure{Phones: 1, MiniPhones: one, SIMs: 1, SearchID: searchID, FoundBy: foundBy}, p))
		}
	}
	extra := int64(poisson(rng, 0.4))
	acc := int64(rng.IntN(3))
	emit(seizure(f, zone, cellLabel(zone, rng), t.Add(15*time.Minute),
		event.Seizure{Phones: int64(len(found)) + extra, MiniPhones: minis, SIMs: int64(len(found)) + extra + int64(rng.IntN(3)), Accessories: &acc, SearchID: searchID, FoundBy: foundBy}, nil))
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
		e.IMEI, e.IMSI = p.imei, p.sims[p.sim]
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
