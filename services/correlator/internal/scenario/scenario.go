// Package scenario generates enriched detections for the correlator's tests and benchmarks:
// a background of ordinary activity (phones that stay in their prison, with their own SIM,
// of common models; calls at a steady rate; the odd drone and empty search) and planted
// patterns, one per shipped rule, each with the alert it must raise. No rule lists the
// background's models: the rules learn them as usual from the data (a model at every
// facility every day is never new anywhere). FeedStart says since when a facility reports,
// for the rules whose claims need history.
package scenario

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

// CommonTACs are the background's popular models, at every facility of a background every
// day. No rule lists them: TAC_SPREAD and BATCH_RANGE learn that they are usual.
var CommonTACs = []string{"35104463", "35067889", "35292511", "35657310"}

// Expect is an alert a scenario must raise.
type Expect struct {
	Rule       string
	GroupKey   string
	Facilities []string
}

// Gen builds events. It is deterministic for a seed.
type Gen struct {
	Ref        *reference.Snapshot
	Facilities []*reference.Facility // with coordinates, sorted by id
	rnd        *rand.Rand
	seq        int
	prefix     string
}

// DefaultReference loads the reference data embedded in the binary.
func DefaultReference() (*reference.Snapshot, error) { return reference.Load(schemaref.FS) }

// New returns a generator; prefix makes event ids unique across runs that share storage.
func New(ref *reference.Snapshot, seed uint64, prefix string) *Gen {
	g := &Gen{Ref: ref, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prefix: prefix}
	for _, f := range ref.Facilities() {
		if f.HasCoords {
			g.Facilities = append(g.Facilities, f)
		}
	}
	sort.Slice(g.Facilities, func(i, j int) bool { return g.Facilities[i].ID < g.Facilities[j].ID })
	return g
}

// Device is a handset and its SIM, and the zone of its facility where it lives.
type Device struct {
	IMEI, IMSI, TAC, Serial string
	Zone                    string
}

// NewDevice returns a device of tac with a random serial block.
func (g *Gen) NewDevice(tac string) Device {
	return g.NewDeviceInBlock(tac, fmt.Sprintf("%03d", g.rnd.IntN(1000)))
}

// NewDeviceInBlock returns a device of tac whose serial starts with block.
func (g *Gen) NewDeviceInBlock(tac, block string) Device {
	return Device{IMEI: g.hex(), IMSI: g.hex(), TAC: tac, Serial: block, Zone: fmt.Sprintf("%c-%d", 'A'+g.rnd.IntN(3), g.rnd.IntN(3))}
}

func (g *Gen) hex() string { return fmt.Sprintf("%016x%016x", g.rnd.Uint64(), g.rnd.Uint64()) }

// Facility returns the i-th facility (with coordinates).
func (g *Gen) Facility(i int) *reference.Facility { return g.Facilities[i%len(g.Facilities)] }

// FarApart returns two facilities more than minKm apart.
func (g *Gen) FarApart(minKm float64) (a, b *reference.Facility) {
	a = g.Facilities[0]
	for _, f := range g.Facilities[1:] {
		if reference.HaversineKm(a.Lat, a.Lon, f.Lat, f.Lon) > minKm {
			return a, f
		}
	}
	panic("no two facilities far enough apart")
}

func (g *Gen) base(kind event.Kind, f *reference.Facility, t time.Time) event.Enriched {
	g.seq++
	var e event.Enriched
	e.EventID = fmt.Sprintf("%s-%08d", g.prefix, g.seq)
	e.SensorID = f.ID + ".mas-001"
	e.ObservedAt = event.NewTime(t)
	e.Kind = kind
	e.Zone = "A-1"
	e.ReceivedAt = event.NewTime(t.Add(time.Second))
	e.EnrichedAt = event.NewTime(t.Add(time.Second))
	e.FacilityID, e.FacilityName, e.FacilityType = f.ID, f.Name, f.TypeCode
	e.DISP, e.RegionCode, e.DepartmentCode = f.DISP, f.RegionCode, f.DepartmentCode
	lat, lon := f.Lat, f.Lon
	e.FacilityLat, e.FacilityLon = &lat, &lon
	e.ZoneType = "cell_block"
	e.SensorType = "mas"
	return e
}

// Radio is an attempt (mas_attach, call_attempt, …) by d at facility f at t.
func (g *Gen) Radio(kind event.Kind, d Device, f *reference.Facility, t time.Time) event.Enriched {
	e := g.base(kind, f, t)
	if d.Zone != "" {
		e.Zone = d.Zone
	}
	e.RAT, e.Outcome = event.RAT4G, event.OutcomeBlocked
	e.KeyVersion = "k1"
	e.IMEIPseudo, e.TAC, e.SerialBlock = d.IMEI, d.TAC, d.Serial
	e.IMSIPseudo, e.MCC, e.MNC = d.IMSI, "208", "15"
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return e
}

// FeedStart is an RF burst (no phone identity, no model) at f at t: the facility's first
// event, so that its feed exists since t (facility_coverage) for the rules whose claims
// need history, without anything a rule counts.
func (g *Gen) FeedStart(f *reference.Facility, t time.Time) event.Enriched {
	e := g.base(event.KindRFBurst, f, t)
	e.SensorID = f.ID + ".rf-001"
	e.SensorType = "rf_detector"
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return e
}

// Drone is a drone sighting at f.
func (g *Gen) Drone(f *reference.Facility, t time.Time) event.Enriched {
	e := g.base(event.KindDroneSeen, f, t)
	e.SensorID = f.ID + ".drone-001"
	e.SensorType = "drone_detector"
	e.Drone = &event.Drone{DetectionSource: "remote_id", Lat: f.Lat + 0.001, Lon: f.Lon}
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return e
}

// Seized is a search record: d's phone seized at f (d zero: nothing found).
func (g *Gen) Seized(d Device, f *reference.Facility, t time.Time) event.Enriched {
	e := g.base(event.KindItemSeized, f, t)
	e.SensorID = f.ID + ".searches"
	e.SensorType = "search_report"
	e.Seizure = &event.Seizure{SearchID: "s-" + e.EventID}
	if d.IMEI != "" {
		e.Seizure.Phones = 1
		e.IMEIPseudo, e.TAC, e.SerialBlock, e.IMSIPseudo = d.IMEI, d.TAC, d.Serial, d.IMSI
	}
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return e
}

// Background is ordinary activity at facilities [0, n) from start for days: per facility,
// devicesPerFacility phones that stay home with their own SIM (mostly common models, some of
// a model local to the facility), a few attempts a day each; calls at a steady rate in
// every hour; a drone and an empty search now and then.
func (g *Gen) Background(start time.Time, days, n, devicesPerFacility, eventsPerDeviceDay int) ([]event.Enriched, map[string][]Device) {
	var out []event.Enriched
	residents := map[string][]Device{}
	for fi := 0; fi < n; fi++ {
		f := g.Facility(fi)
		localTAC := fmt.Sprintf("86%06d", fi) // a model seen at this facility only
		devices := make([]Device, devicesPerFacility)
		for i := range devices {
			tac := CommonTACs[g.rnd.IntN(len(CommonTACs))]
			if i%4 == 3 {
				tac = localTAC
			}
			devices[i] = g.NewDevice(tac)
		}
		residents[f.ID] = devices
		kinds := []event.Kind{event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt}
		for day := 0; day < days; day++ {
			dayStart := start.Add(time.Duration(day) * 24 * time.Hour)
			for _, d := range devices {
				for k := 0; k < eventsPerDeviceDay; k++ {
					t := dayStart.Add(time.Duration(g.rnd.Int64N(int64(24 * time.Hour))))
					out = append(out, g.Radio(kinds[g.rnd.IntN(len(kinds))], d, f, t))
				}
			}
			if day%9 == fi%9 {
				// Drones fly at night (03:00-04:00); planted patterns happen from 10:00 on, so
				// that a background drone never precedes a planted new device by 6 hours.
				out = append(out, g.Drone(f, dayStart.Add(3*time.Hour+time.Duration(g.rnd.Int64N(int64(time.Hour))))))
			}
			if day%11 == fi%11 {
				// Routine searches of the disciplinary quarter, where no phone lives.
				s := g.Seized(Device{}, f, dayStart.Add(time.Duration(g.rnd.Int64N(int64(24*time.Hour)))))
				s.Zone = "Q-0"
				out = append(out, s)
			}
		}
	}
	return out, residents
}

// SortByTime orders events by event time (then id), as sensors would report them.
func SortByTime(es []event.Enriched) {
	sort.SliceStable(es, func(i, j int) bool {
		if !es[i].ObservedAt.Equal(es[j].ObservedAt.Time) {
			return es[i].ObservedAt.Before(es[j].ObservedAt.Time)
		}
		return es[i].EventID < es[j].EventID
	})
}
