// Package world arranges the reference data the way the simulator reasons about it: for each
// facility, which sensor covers which zone — the managed access system (MAS) of each building
// and of the visiting room, the RF detectors of each floor, yard and visiting room, the drone
// detectors of the perimeter, the jammers and the search-report terminal.
package world

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vigie/vigie/pkg/reference"
)

// Facility is one establishment and its sensors, grouped by what they cover.
type Facility struct {
	*reference.Facility
	// Size is a rough relative population (1 for a maison d'arrêt) used to size traffic.
	Size float64
	// Lat and Lon are the facility's coordinates, or the centre of France when unknown.
	Lat, Lon float64
	// CellZones are the detention zones ("A-0", "B-2", …), sorted.
	CellZones []string
	// MAS is the managed access system of each building ("A", "B", … and "visiting").
	MAS map[string]*reference.Sensor
	// RF holds the RF detectors of each zone (cell zones, yards, "visiting", "workshops").
	RF map[string][]*reference.Sensor
	// Yards are the yard zones.
	Yards []string
	// Drones are the drone detectors of the perimeter.
	Drones []*reference.Sensor
	// Jammers are the jammers of the cell blocks.
	Jammers []*reference.Sensor
	// Search is the staff terminal on which searches are recorded; nil when absent.
	Search *reference.Sensor
	// Sensors lists every sensor of the facility, sorted by id.
	Sensors []*reference.Sensor
}

// HasMAS reports whether any building of the facility has a managed access system: only
// those see phone identities.
func (f *Facility) HasMAS() bool { return len(f.MAS) > 0 }

// MASFor returns the MAS covering a zone ("B-2" is covered by building B's, "visiting" by
// the visiting room's), or nil.
func (f *Facility) MASFor(zone string) *reference.Sensor {
	if zone == "visiting" {
		return f.MAS["visiting"]
	}
	b, _, _ := strings.Cut(zone, "-")
	if strings.HasPrefix(zone, "yard-") {
		b = strings.TrimPrefix(zone, "yard-")
	}
	return f.MAS[b]
}

// MASZones are the cell zones whose building has a MAS.
func (f *Facility) MASZones() []string {
	var out []string
	for _, z := range f.CellZones {
		if f.MASFor(z) != nil {
			out = append(out, z)
		}
	}
	return out
}

// World is every facility of a reference snapshot with its sensors.
type World struct {
	Ref        *reference.Snapshot
	Facilities []*Facility
	byID       map[string]*Facility
}

// sizes is the relative inmate population of each facility type.
var sizes = map[string]float64{"MA": 1, "CP": 2, "CD": 1.2, "MC": 0.7, "CSL": 0.15, "EPSNF": 0.5}

// New groups the snapshot's sensors by facility and zone. Facilities without any sensor are
// left out.
func New(ref *reference.Snapshot) (*World, error) {
	w := &World{Ref: ref, byID: map[string]*Facility{}}
	for _, rf := range ref.Facilities() {
		f := &Facility{Facility: rf, MAS: map[string]*reference.Sensor{}, RF: map[string][]*reference.Sensor{}, Lat: 46.6, Lon: 2.4}
		if rf.HasCoords {
			f.Lat, f.Lon = rf.Lat, rf.Lon
		}
		f.Size = sizes[rf.TypeCode]
		if f.Size == 0 {
			f.Size = 1
		}
		w.byID[rf.ID] = f
	}
	for _, s := range ref.Sensors() {
		f := w.byID[s.FacilityID]
		if f == nil {
			return nil, fmt.Errorf("sensor %s: unknown facility %s", s.ID, s.FacilityID)
		}
		f.Sensors = append(f.Sensors, s)
		switch s.Type {
		case reference.SensorMAS:
			f.MAS[s.Building] = s
		case reference.SensorRF:
			f.RF[s.Zone] = append(f.RF[s.Zone], s)
			switch s.ZoneType {
			case reference.ZoneCellBlock:
				if !slices.Contains(f.CellZones, s.Zone) {
					f.CellZones = append(f.CellZones, s.Zone)
				}
			case reference.ZoneYard:
				if !slices.Contains(f.Yards, s.Zone) {
					f.Yards = append(f.Yards, s.Zone)
				}
			}
		case reference.SensorDrone:
			f.Drones = append(f.Drones, s)
		case reference.SensorJammer:
			f.Jammers = append(f.Jammers, s)
		case reference.SensorSearchReport:
			f.Search = s
		}
	}
	for _, f := range w.byID {
		if len(f.Sensors) == 0 {
			continue
		}
		slices.Sort(f.CellZones)
		slices.Sort(f.Yards)
		if len(f.CellZones) == 0 {
			// A facility whose cell blocks have no RF detector still has cells.
			f.CellZones = []string{"A-0"}
		}
		w.Facilities = append(w.Facilities, f)
	}
	slices.SortFunc(w.Facilities, func(a, b *Facility) int { return strings.Compare(a.ID, b.ID) })
	if len(w.Facilities) == 0 {
		return nil, fmt.Errorf("reference data has no facility with sensors")
	}
	return w, nil
}

// Facility returns a facility by id.
func (w *World) Facility(id string) (*Facility, bool) {
	f, ok := w.byID[id]
	return f, ok && len(f.Sensors) > 0
}

// DistanceKm is the great-circle distance between two facilities.
func DistanceKm(a, b *Facility) float64 { return reference.HaversineKm(a.Lat, a.Lon, b.Lat, b.Lon) }
