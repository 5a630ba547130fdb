package traffic

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/identity"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// Steady makes traffic in real time for benchmarks: a standing population of contraband
// phones in the facilities with a MAS transmitting at random (MAS attempts with identities,
// RF bursts), and on demand probes: a new IMEI seen at two facilities more than 100 km apart
// within a second, which the IMPOSSIBLE_TRAVEL rule must report.
type Steady struct {
	g      *Generator
	rng    *rand.Rand
	phones []*phone
	far    [][2]*world.Facility
	runID  string
	seq    uint64
}

// NewSteady prepares a population of n phones.
func NewSteady(w *world.World, seed uint64, runID string, n int) (*Steady, error) {
	o := DefaultOptions()
	o.Seed, o.RunID, o.Scale, o.Scenarios, o.Days = seed, runID, 0, nil, 7
	g, err := New(w, o)
	if err != nil {
		return nil, err
	}
	s := &Steady{g: g, rng: g.rng("steady", 0), runID: runID}
	fs := g.shuffled("steady", withMAS)
	if len(fs) < 2 {
		return nil, fmt.Errorf("steady traffic needs two facilities with a MAS, the reference has %d", len(fs))
	}
	for i := range n {
		f := fs[i%len(fs)]
		zs := f.MASZones()
		p := g.newPhone(s.rng, g.cat.Draw(s.rng, identity.Contraband), 0, 0, profileNight)
		p.stays = []stay{{fac: f, zone: zs[s.rng.IntN(len(zs))], from: time.Time{}, to: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}}
		s.phones = append(s.phones, p)
	}
	for _, a := range fs {
		for _, b := range fs {
			if world.DistanceKm(a, b) > 300 {
				s.far = append(s.far, [2]*world.Facility{a, b})
			}
		}
	}
	if len(s.far) == 0 {
		return nil, fmt.Errorf("no two facilities with a MAS 300 km apart")
	}
	return s, nil
}

func (s *Steady) id() string {
	s.seq++
	return s.runID + "-" + Letters(s.seq)
}

// Events emits n events observed at now.
func (s *Steady) Events(now time.Time, n int, emit func(*event.Detector)) {
	var out []event.Detector
	for n > 0 {
		p := s.phones[s.rng.IntN(len(s.phones))]
		out = out[:0]
		s.g.transmit(p, &p.stays[0], now, s.rng, func(e event.Detector) { out = append(out, e) })
		for i := 0; i < len(out) && n > 0; i++ {
			out[i].ObservedAt = event.NewTime(now)
			out[i].EventID = s.id()
			emit(&out[i])
			n--
		}
	}
}

// Probe emits a cloned-IMEI pair observed at now: the same new IMEI at two distant
// facilities. It returns the IMEI and the two event ids.
func (s *Steady) Probe(now time.Time, emit func(*event.Detector)) (imei string, eventIDs [2]string) {
	pair := s.far[s.rng.IntN(len(s.far))]
	a := s.g.newPhone(s.rng, s.g.cat.Draw(s.rng, identity.Contraband), 0, 0, profileNight)
	for i, f := range pair {
		zs := f.MASZones()
		zone := zs[s.rng.IntN(len(zs))]
		e := s.g.masEvent(a, f.MASFor(zone), zone, event.KindMASAttach, now, s.rng)
		e.IMSI = identity.IMSI(s.rng)
		e.EventID = s.id()
		eventIDs[i] = e.EventID
		emit(&e)
	}
	return a.imei, eventIDs
}
