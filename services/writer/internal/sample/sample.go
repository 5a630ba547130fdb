// Package sample makes realistic enriched events for the writer's tests and benchmarks:
// about 190 facilities, a few sensors each, a population of phones (a few TACs dominate,
// mini phones among them), every kind of event in plausible proportions.
package sample

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// Generator makes events deterministically from its seed.
type Generator struct {
	rng     *rand.Rand
	devices []device
	seq     int64
	start   time.Time
}

type device struct {
	imei, imsi, tac, mcc, mnc string
	facility                  int
	mini                      bool
}

var (
	tacs   = []string{"35828802", "86734503", "35391110", "86012304", "35674108", "01234500", "86429705", "35209906"}
	models = []string{"Oportik Mini", "BM10", "Galaxy A14", "KECHAODA K10", "iPhone 12", "Nokia 105", "L8Star BM30", "Redmi 9"}
	kinds  = []event.Kind{event.KindMASAttach, event.KindMASAttach, event.KindCallAttempt, event.KindCallAttempt,
		event.KindSMSAttempt, event.KindDataAttempt, event.KindRFBurst, event.KindRFBurst}
	rats  = []event.RAT{event.RAT2G, event.RAT2G, event.RAT3G, event.RAT4G, event.RAT4G, event.RAT5G}
	bands = []string{"GSM900", "DCS1800", "B1", "B3", "B7", "B20", "n78"}
	zones = []string{"bat-a", "bat-b", "bat-c", "parloir", "cour-1", "cour-2", "atelier"}
)

// New returns a generator of events observed from start on, with devices phones.
func New(seed uint64, devices int, start time.Time) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: start}
	for i := range devices {
		t := g.rng.IntN(len(tacs))
		g.devices = append(g.devices, device{
			imei:     pseudo("imei", i),
			imsi:     pseudo("imsi", i),
			tac:      tacs[t],
			mcc:      "208",
			mnc:      []string{"01", "10", "15", "20"}[g.rng.IntN(4)],
			facility: g.rng.IntN(190),
			mini:     t == 0 || t == 6,
		})
	}
	return g
}

func pseudo(kind string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", kind, i)))
	return hex.EncodeToString(sum[:])
}

// Next returns the next event.
func (g *Generator) Next() event.Enriched {
	g.seq++
	r := g.rng
	observed := g.start.Add(time.Duration(g.seq) * 3 * time.Millisecond)
	kind := kinds[r.IntN(len(kinds))]
	switch x := r.IntN(1000); {
	case x == 0:
		kind = event.KindDroneSeen
	case x == 1:
		kind = event.KindItemSeized
	case x == 2:
		kind = event.KindJammerAlarm
	}
	d := g.devices[r.IntN(len(g.devices))]
	fac := d.facility
	if kind == event.KindRFBurst || kind == event.KindDroneSeen || kind == event.KindJammerAlarm {
		fac = r.IntN(190)
	}
	var e event.Enriched
	e.EventID = fmt.Sprintf("ev-%d-%08d", fac, g.seq)
	e.SensorID = fmt.Sprintf("fac-%03d-sensor-%02d", fac, r.IntN(8))
	e.ObservedAt = event.NewTime(observed)
	e.Kind = kind
	e.Zone = zones[r.IntN(len(zones))]
	e.KeyVersion = "k1"
	e.ReceivedAt = event.NewTime(observed.Add(time.Duration(20+r.IntN(200)) * time.Millisecond))
	e.EnrichedAt = event.NewTime(e.ReceivedAt.Add(2 * time.Millisecond))
	e.FacilityID = fmt.Sprintf("fac-%03d", fac)
	e.FacilityName = fmt.Sprintf("Centre pénitentiaire n°%d", fac)
	e.FacilityType = []string{"MA", "CD", "CP", "MC"}[fac%4]
	e.DISP = []string{"DISP Paris", "DISP Lyon", "DISP Marseille", "DISP Rennes", "DISP Toulouse"}[fac%5]
	e.RegionCode = fmt.Sprintf("%02d", 11+fac%13)
	e.DepartmentCode = fmt.Sprintf("%02d", 1+fac%95)
	e.DepartmentName = "Département " + e.DepartmentCode
	lat, lon := 43+float64(fac%50)/10, 1+float64(fac%60)/10
	e.FacilityLat, e.FacilityLon = &lat, &lon
	e.Building = "bat-" + string(rune('a'+fac%3))
	e.ZoneType = "cell_block"
	e.SensorType = "mas"
	e.Vendor = "tecore"
	switch {
	case kind.IsAttempt():
		e.RAT = rats[r.IntN(len(rats))]
		e.Band = bands[r.IntN(len(bands))]
		f, s := 900+float64(r.IntN(1000))/10, -110+float64(r.IntN(700))/10
		e.FreqMHz, e.RSSIdBm = &f, &s
		e.Outcome = event.OutcomeBlocked
		if kind == event.KindCallAttempt {
			dur := int64(r.IntN(5000))
			e.DurationMs = &dur
			e.MSISDNPseudo = pseudo("msisdn", r.IntN(5000))
		}
		if kind == event.KindDataAttempt {
			b := int64(r.IntN(1 << 20))
			e.DataBytes = &b
		}
		e.IMEIPseudo, e.IMSIPseudo, e.TAC, e.MCC, e.MNC = d.imei, d.imsi, d.tac, d.mcc, d.mnc
		e.SerialBlock = fmt.Sprintf("%016x", r.IntN(1000)) // an id of the block key (pkg/pseudonym), 1,000 blocks
		e.Manufacturer, e.Model = "Maker", models[indexOf(tacs, d.tac)]
		e.MiniPhone = &d.mini
		e.Operator, e.Brand, e.Country = "Orange France", "Orange", "FR"
	case kind == event.KindRFBurst:
		e.Band = bands[r.IntN(len(bands))]
		s, bw := -90+float64(r.IntN(500))/10, 200.0
		e.RSSIdBm, e.BandwidthKHz = &s, &bw
	case kind == event.KindDroneSeen:
		alt := 80.5
		e.Drone = &event.Drone{DetectionSource: "remote_id", Lat: lat + 0.001, Lon: lon, AltM: &alt,
			RemoteID: &event.RemoteID{UASID: "22e165cffd2fd8792576410e0bc2cafc", UASIDType: "serial_number", OperatorID: "e84797a8f93994ee5236887c8561132a"}}
	case kind == event.KindJammerAlarm:
		e.Jammer = &event.Jammer{Alarm: "tamper", Severity: "critical", Bands: []string{"GSM900", "B20"}}
	case kind == event.KindItemSeized:
		e.Seizure = &event.Seizure{Phones: 1, MiniPhones: 1, SIMs: 2, SearchID: "op-1", FoundBy: "cell_search"}
		e.IMEIPseudo, e.TAC = d.imei, d.tac
	}
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return e
}

// JSON returns the next event as it travels on detections.enriched.v1, and its key.
func (g *Generator) JSON() (key, value []byte) {
	e := g.Next()
	v, err := json.Marshal(e)
	if err != nil {
		panic(err) // the event holds only marshalable fields
	}
	return []byte(e.Enrichment.DeviceKey), v
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return 0
}
