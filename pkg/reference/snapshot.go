package reference

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Snapshot is one loaded, validated version of the reference data. It is immutable: the
// pointers its methods return are shared and must not be modified.
type Snapshot struct {
	facilities     map[string]*Facility
	facilityList   []*Facility
	sensors        map[string]*Sensor
	sensorList     []*Sensor
	models         map[uint32]*Model
	operators      map[uint32]*Operator
	nonStandardMNC int
	version        string
	loadDuration   time.Duration

	zonesOnce sync.Once
	zones     map[string]map[string]bool // facility -> its zones (those of its sensors)
}

// Stats counts what a snapshot holds.
type Stats struct {
	Facilities int
	Sensors    int
	TACs       int
	Operators  int
	// NonStandardMNC counts operator rows left out of the lookup because their MNC is not
	// 2 or 3 digits (private-network ranges in the source).
	NonStandardMNC int
}

// Version identifies the content: the first 16 hex digits of a SHA-256 over the four files.
// Two snapshots of identical files have the same version.
func (s *Snapshot) Version() string { return s.version }

// LoadDuration is how long reading and validating the files took.
func (s *Snapshot) LoadDuration() time.Duration { return s.loadDuration }

// Stats returns the number of entries of each kind.
func (s *Snapshot) Stats() Stats {
	return Stats{
		Facilities:     len(s.facilities),
		Sensors:        len(s.sensors),
		TACs:           len(s.models),
		Operators:      len(s.operators),
		NonStandardMNC: s.nonStandardMNC,
	}
}

// Facility returns the facility with this id.
func (s *Snapshot) Facility(id string) (*Facility, bool) {
	f, ok := s.facilities[id]
	return f, ok
}

// Facilities returns every facility, sorted by id.
func (s *Snapshot) Facilities() []*Facility { return slices.Clone(s.facilityList) }

// Sensor returns the sensor with this id; its Facility field is set.
func (s *Snapshot) Sensor(id string) (*Sensor, bool) {
	v, ok := s.sensors[id]
	return v, ok
}

// HasZone reports whether zone is a zone of the facility: the zone of one of its sensors.
// Ingest refuses an event whose zone its sensor's facility does not have, so that a zone is
// never free text.
func (s *Snapshot) HasZone(facilityID, zone string) bool {
	s.zonesOnce.Do(func() {
		s.zones = map[string]map[string]bool{}
		for _, v := range s.sensorList {
			if s.zones[v.FacilityID] == nil {
				s.zones[v.FacilityID] = map[string]bool{}
			}
			s.zones[v.FacilityID][v.Zone] = true
		}
	})
	return s.zones[facilityID][zone]
}

// Sensors returns every sensor, sorted by id.
func (s *Snapshot) Sensors() []*Sensor { return slices.Clone(s.sensorList) }

// Model returns the phone model of an 8-digit TAC.
func (s *Snapshot) Model(tac string) (*Model, bool) {
	key, ok := tacKey(tac)
	if !ok {
		return nil, false
	}
	m, ok := s.models[key]
	return m, ok
}

// Models returns every phone model, sorted by TAC.
func (s *Snapshot) Models() []*Model {
	out := make([]*Model, 0, len(s.models))
	for _, m := range s.models {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Model) int { return strings.Compare(a.TAC, b.TAC) })
	return out
}

// Operators returns the operators of the lookup (one per MCC/MNC), sorted by MCC and MNC.
func (s *Snapshot) Operators() []*Operator {
	out := make([]*Operator, 0, len(s.operators))
	for _, o := range s.operators {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *Operator) int {
		if c := strings.Compare(a.MCC, b.MCC); c != 0 {
			return c
		}
		return strings.Compare(a.MNC, b.MNC)
	})
	return out
}

// Operator returns the operator of an MCC and MNC, the MNC as written (2 or 3 digits).
func (s *Snapshot) Operator(mcc, mnc string) (*Operator, bool) {
	key, ok := operatorKey(mcc, mnc)
	if !ok {
		return nil, false
	}
	o, ok := s.operators[key]
	return o, ok
}

// OperatorForIMSI finds the operator of an IMSI prefix (at least MCC and a 2-digit MNC):
// the 3-digit MNC is tried first, then the 2-digit one, since the MNC length is only known
// from the table.
func (s *Snapshot) OperatorForIMSI(prefix string) (*Operator, bool) {
	if len(prefix) < 5 {
		return nil, false
	}
	if len(prefix) >= 6 {
		if o, ok := s.Operator(prefix[:3], prefix[3:6]); ok {
			return o, true
		}
	}
	return s.Operator(prefix[:3], prefix[3:5])
}

// DistanceKm is the great-circle distance between two facilities; ok is false when either
// is unknown or has no coordinates.
func (s *Snapshot) DistanceKm(facilityA, facilityB string) (km float64, ok bool) {
	a, okA := s.facilities[facilityA]
	b, okB := s.facilities[facilityB]
	if !okA || !okB || !a.HasCoords || !b.HasCoords {
		return 0, false
	}
	return HaversineKm(a.Lat, a.Lon, b.Lat, b.Lon), true
}

// HaversineKm is the great-circle distance in kilometres between two points in degrees.
func HaversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthRadiusKm = 6371.0088
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}
