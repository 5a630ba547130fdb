// Package dedup remembers which (sensor_id, event_id) pairs ingest has produced to Kafka, so
// that an event sent again (a retried request) is acknowledged without being produced twice.
//
// Memory: each pair is kept as a 64-bit fingerprint (maphash with a per-process seed), not
// as its strings, in open-addressing tables of uint64: 13 to 16 bytes per pair (measured;
// Go maps took 36). Pairs are grouped in generations of window/(generations-1): a pair is
// remembered for at least window and at most window × generations/(generations-1), i.e.
// 12 minutes for the default 10. Sustained 20,000 events/s thus holds up to 14.4 M
// fingerprints, 190 to 230 MB; the 1,000 events/s of a large facility, about 10 MB.
//
// The chance that a new event's fingerprint collides with a remembered one (and is wrongly
// taken for a duplicate) is below 14.4e6 / 2^64 ≈ 8e-13 per event.
//
// The memory is per process: after a restart, or on another replica, a retried event is
// produced again, at a second offset of detections.raw.v1. Nothing downstream removes that
// copy: the enricher is at-least-once and the writer's deduplication is of its own retried
// inserts (by Kafka offset range), not of event_id, so the detections table then holds the
// event twice and rules may count it twice. This window is Vigie's only deduplication on
// event_id.
package dedup

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	shards      = 32
	generations = 6
	minTable    = 256
)

// Window is a sharded, generational set of fingerprints with pending reservations.
type Window struct {
	seed   maphash.Seed
	step   time.Duration
	now    func() time.Time
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	gens    [generations]table // gens[0] is the current generation
	pending map[uint64]struct{}
	rotated time.Time
}

// table is an open-addressing set of non-zero uint64 with linear probing.
type table struct {
	slots []uint64
	n     int
}

func (t *table) contains(k uint64) bool {
	if t.n == 0 {
		return false
	}
	mask := uint64(len(t.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
	}
}

func (t *table) insert(k uint64) {
	if len(t.slots) == 0 {
		t.slots = make([]uint64, minTable)
	}
	if (t.n+1)*4 > len(t.slots)*3 { // load above 3/4: double
		old := t.slots
		t.slots, t.n = make([]uint64, 2*len(old)), 0
		for _, v := range old {
			if v != 0 {
				t.put(v)
			}
		}
	}
	t.put(k)
}

func (t *table) put(k uint64) {
	mask := uint64(len(t.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.slots[i] {
		case k:
			return
		case 0:
			t.slots[i] = k
			t.n++
			return
		}
	}
}

// New returns a window that remembers a pair for at least window.
func New(window time.Duration, now func() time.Time) *Window {
	w := &Window{seed: maphash.MakeSeed(), step: window / (generations - 1), now: now}
	t := now()
	for i := range w.shards {
		w.shards[i] = shard{pending: map[uint64]struct{}{}, rotated: t}
	}
	return w
}

// Key is the fingerprint of a pair; never 0.
func (w *Window) Key(sensorID, eventID string) uint64 {
	var h maphash.Hash
	h.SetSeed(w.seed)
	h.WriteString(sensorID)
	h.WriteByte(0)
	h.WriteString(eventID)
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

// State of a key.
type State int

// States returned by Reserve.
const (
	// Fresh: reserved for this caller, who must Commit or Release it.
	Fresh State = iota
	// Done: produced before; acknowledge without producing.
	Done
	// Pending: another request is producing it right now; its outcome is not known yet.
	Pending
)

// Reserve looks a key up and, when new, reserves it.
func (w *Window) Reserve(key uint64) State {
	s := &w.shards[key%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w.rotate(s)
	for i := range s.gens {
		if s.gens[i].contains(key) {
			return Done
		}
	}
	if _, ok := s.pending[key]; ok {
		return Pending
	}
	s.pending[key] = struct{}{}
	return Fresh
}

// Commit marks reserved keys as produced.
func (w *Window) Commit(keys []uint64) {
	for _, k := range keys {
		s := &w.shards[k%shards]
		s.mu.Lock()
		w.rotate(s)
		delete(s.pending, k)
		s.gens[0].insert(k)
		s.mu.Unlock()
	}
}

// Release drops reservations of keys that were not produced, so that a retry produces them.
func (w *Window) Release(keys []uint64) {
	for _, k := range keys {
		s := &w.shards[k%shards]
		s.mu.Lock()
		delete(s.pending, k)
		s.mu.Unlock()
	}
}

// Len is the number of remembered keys.
func (w *Window) Len() int {
	n := 0
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		for j := range s.gens {
			n += s.gens[j].n
		}
		s.mu.Unlock()
	}
	return n
}

// rotate starts a new generation every step and drops the oldest. The new table is sized
// for as many keys as the last generation took, so that it rarely grows.
func (w *Window) rotate(s *shard) {
	now := w.now()
	steps := int(now.Sub(s.rotated) / w.step)
	if steps <= 0 {
		return
	}
	s.rotated = s.rotated.Add(time.Duration(steps) * w.step)
	last := s.gens[0].n
	for range min(steps, generations) {
		copy(s.gens[1:], s.gens[:generations-1])
		s.gens[0] = table{}
	}
	if steps == 1 && last > 0 {
		size := minTable
		for size*3 < last*5 { // load about 0.6 for the same volume
			size *= 2
		}
		s.gens[0].slots = make([]uint64, size)
	}
}
