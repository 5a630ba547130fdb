package traffic

// One detector event of each kind a phone or a sensor emits, and the random draws behind them.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
)

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
		IMSI: p.sim(t),
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
