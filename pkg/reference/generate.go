package reference

import (
	"encoding/csv"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// sensorColumns is the header of sensors.csv, in file order.
var sensorColumns = []string{"sensor_id", "facility_id", "building", "floor", "zone_type", "zone", "x_m", "y_m", "sensor_type", "vendor"}

// GenerateOptions tunes GenerateSensors.
type GenerateOptions struct {
	// Seed changes every facility's layout; the same seed gives the same sensors.
	Seed uint64
	// PerFacility, when positive, gives every facility exactly this many sensors (for
	// benchmarks); zero sizes each facility by its type, as in the default file.
	PerFacility int
}

// Placeholder vendor names: which vendors equip which French prison is not public, so the
// generated data only models that a facility buys each kind of sensor from one vendor.
var vendors = map[SensorType][]string{
	SensorMAS:          {"mas-vendor-a", "mas-vendor-b"},
	SensorRF:           {"rf-vendor-a", "rf-vendor-b", "rf-vendor-c"},
	SensorDrone:        {"drone-vendor-a", "drone-vendor-b"},
	SensorJammer:       {"jammer-vendor-a", "jammer-vendor-b"},
	SensorSearchReport: {"search-report-app"},
	SensorOther:        {"other-vendor"},
}

var idCodes = map[SensorType]string{
	SensorMAS: "mas", SensorRF: "rf", SensorDrone: "drone", SensorJammer: "jam", SensorSearchReport: "search", SensorOther: "other",
}

// layout is the rough shape of a facility type: detention buildings, floors, and whether it
// has workshops.
type layout struct {
	minBuildings, maxBuildings int
	minFloors, maxFloors       int
	workshops                  bool
}

var layouts = map[string]layout{
	"MA":    {2, 4, 2, 4, false},
	"CP":    {4, 7, 2, 4, true},
	"CD":    {3, 5, 2, 3, true},
	"MC":    {2, 4, 2, 3, true},
	"CSL":   {1, 1, 1, 2, false},
	"EPSNF": {2, 2, 3, 4, false},
}

var defaultLayout = layout{2, 3, 2, 3, false}

// GenerateSensors makes a realistic sensor set for each facility, deterministically from the
// seed and the facility id (adding a facility does not change the others). Every facility
// has RF detectors in its cell blocks, yards and visiting room and a search-report terminal; managed
// access systems, jammers and drone detectors equip only part of the facilities, as in
// France (anti-drone systems on about 49 of 187 sites in 2024; jammers patchy), with long-
// sentence and large facilities more often equipped. Sensors come sorted by id.
func GenerateSensors(facilities []*Facility, opt GenerateOptions) []Sensor {
	var out []Sensor
	for _, f := range facilities {
		out = append(out, generateFacility(f, opt)...)
	}
	slices.SortFunc(out, func(a, b Sensor) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func generateFacility(f *Facility, opt GenerateOptions) []Sensor {
	h := fnv.New64a()
	h.Write([]byte(f.ID))
	rng := rand.New(rand.NewPCG(opt.Seed, h.Sum64()))
	lay, ok := layouts[f.TypeCode]
	if !ok {
		lay = defaultLayout
	}
	between := func(lo, hi int) int { return lo + rng.IntN(hi-lo+1) }
	chance := func(p float64) bool { return rng.Float64() < p }
	large := f.TypeCode == "CP" || f.TypeCode == "MC"
	hasMAS := chance(map[bool]float64{true: 0.7, false: 0.35}[large])
	hasJammer := chance(0.6)
	hasDrone := chance(map[bool]float64{true: 0.5, false: 0.2}[large])
	if f.TypeCode == "CSL" {
		hasMAS, hasDrone = false, false
	}
	vendorOf := map[SensorType]string{}
	for _, t := range SensorTypes {
		vs := vendors[t]
		if t == SensorOther {
			continue
		}
		vendorOf[t] = vs[rng.IntN(len(vs))]
	}

	g := &facilityGen{f: f, rng: rng, vendorOf: vendorOf, next: map[SensorType]int{}}
	buildings := between(lay.minBuildings, lay.maxBuildings)
	for b := 0; b < buildings; b++ {
		name := string(rune('A' + b))
		bx, by := float64(b%3)*90-90, float64(b/3)*70
		floors := between(lay.minFloors, lay.maxFloors)
		for fl := 0; fl < floors; fl++ {
			zone := fmt.Sprintf("%s-%d", name, fl)
			for i, n := 0, between(1, 3); i < n; i++ {
				g.add(SensorRF, name, fl, ZoneCellBlock, zone, bx, by, 25)
			}
			if hasJammer && chance(0.5) {
				g.add(SensorJammer, name, fl, ZoneCellBlock, zone, bx, by, 20)
			}
		}
		if hasMAS {
			g.add(SensorMAS, name, floors-1, ZoneCellBlock, name+"-roof", bx, by, 10)
		}
		g.add(SensorRF, "yard-"+name, 0, ZoneYard, "yard-"+name, bx, by+45, 15)
	}
	for i, n := 0, between(1, 2); i < n; i++ {
		g.add(SensorRF, "visiting", 0, ZoneVisitingRoom, "visiting", 0, -120, 15)
	}
	if hasMAS {
		g.add(SensorMAS, "visiting", 0, ZoneVisitingRoom, "visiting", 0, -120, 10)
	}
	if lay.workshops {
		for i, n := 0, between(1, 2); i < n; i++ {
			g.add(SensorRF, "workshops", 0, ZoneWorkshop, "workshops", 120, -40, 25)
		}
	}
	if hasDrone {
		for i, n := 0, between(1, 3); i < n; i++ {
			angle := 2 * math.Pi * float64(i) / float64(n)
			g.add(SensorDrone, "perimeter", 0, ZonePerimeter, "perimeter", 220*math.Cos(angle), 220*math.Sin(angle), 30)
		}
	}
	g.add(SensorSearchReport, "admin", 0, ZoneCellBlock, "search-team", -150, -120, 5)

	if opt.PerFacility > 0 {
		g.resize(opt.PerFacility, buildings)
	}
	return g.out
}

type facilityGen struct {
	f        *Facility
	rng      *rand.Rand
	vendorOf map[SensorType]string
	next     map[SensorType]int
	out      []Sensor
}

func (g *facilityGen) add(t SensorType, building string, floor int, zt ZoneType, zone string, cx, cy, spread float64) {
	g.next[t]++
	round := func(v float64) float64 { return math.Round(v*10) / 10 }
	g.out = append(g.out, Sensor{
		ID:         fmt.Sprintf("%s.%s-%03d", g.f.ID, idCodes[t], g.next[t]),
		FacilityID: g.f.ID,
		Building:   building,
		Floor:      floor,
		ZoneType:   zt,
		Zone:       zone,
		X:          round(cx + (g.rng.Float64()*2-1)*spread),
		Y:          round(cy + (g.rng.Float64()*2-1)*spread),
		Type:       t,
		Vendor:     g.vendorOf[t],
		Facility:   g.f,
	})
}

// resize trims or pads the realistic set to exactly n sensors: trimming drops cell-block RF
// detectors first and keeps one sensor of every type present; padding adds RF detectors to
// the cell blocks.
func (g *facilityGen) resize(n, buildings int) {
	for len(g.out) < n {
		b := g.rng.IntN(buildings)
		name := string(rune('A' + b))
		fl := g.rng.IntN(3)
		g.add(SensorRF, name, fl, ZoneCellBlock, fmt.Sprintf("%s-%d", name, fl), float64(b%3)*90-90, float64(b/3)*70, 25)
	}
	if len(g.out) <= n {
		return
	}
	kept := map[SensorType]bool{}
	var must, rest []Sensor
	for _, s := range g.out {
		if !kept[s.Type] {
			kept[s.Type] = true
			must = append(must, s)
		} else {
			rest = append(rest, s)
		}
	}
	// Keep the rarer sensors (anything but cell-block RF) before the cell-block RF ones.
	slices.SortStableFunc(rest, func(a, b Sensor) int {
		return boolInt(a.Type == SensorRF && a.ZoneType == ZoneCellBlock) - boolInt(b.Type == SensorRF && b.ZoneType == ZoneCellBlock)
	})
	out := append(must, rest...)
	if len(out) > n {
		out = out[:n]
	}
	g.out = out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// WriteSensorsCSV writes sensors in the sensors.csv format, header first.
func WriteSensorsCSV(w io.Writer, sensors []Sensor) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(sensorColumns); err != nil {
		return fmt.Errorf("write sensors header: %w", err)
	}
	rec := make([]string, len(sensorColumns))
	for _, s := range sensors {
		rec[0], rec[1], rec[2] = s.ID, s.FacilityID, s.Building
		rec[3] = strconv.Itoa(s.Floor)
		rec[4], rec[5] = string(s.ZoneType), s.Zone
		rec[6] = strconv.FormatFloat(s.X, 'f', 1, 64)
		rec[7] = strconv.FormatFloat(s.Y, 'f', 1, 64)
		rec[8], rec[9] = string(s.Type), s.Vendor
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write sensor %s: %w", s.ID, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write sensors: %w", err)
	}
	return nil
}
