// Package dedup remembers which (sensor_id, event_id) pairs ingest has produced to Kafka, so
// that an event sent again (a retried request) is acknowledged without being produced twice.
//
// Memory: each pair is kept as a 64-bit fingerprint (maphash with a per-process seed), not
// as its strings, in generations of one window each: a pair is remembered for at least one
// window and at most two. At 20,000 events/s and a 10-minute window that is up to 24 M
// fingerprints, about 16 bytes each in Go maps. The chance that a new event's fingerprint
// collides with a remembered one (and is wrongly taken for a duplicate) is below
// 24e6 / 2^64 ≈ 1.3e-12 per event.
//
// The memory is per process: after a restart, or on another replica, a retried event is
// produced again. Downstream consumers are at-least-once and deduplicate on event_id.
package dedup

import (
	"hash/maphash"
	"sync"
	"time"
)

const shards = 32

// Window is a sharded two-generation set of fingerprints with pending reservations.
type Window struct {
	seed   maphash.Seed
	window time.Duration
	now    func() time.Time
	shards [shards]shard
}

type shard struct {
	mu       sync.Mutex
	cur      map[uint64]struct{}
	prev     map[uint64]struct{}
	pending  map[uint64]struct{}
	rotated  time.Time
	capacity int
}

// New returns a window that remembers a pair for at least window.
func New(window time.Duration, now func() time.Time) *Window {
	w := &Window{seed: maphash.MakeSeed(), window: window, now: now}
	t := now()
	for i := range w.shards {
		w.shards[i] = shard{cur: map[uint64]struct{}{}, prev: map[uint64]struct{}{}, pending: map[uint64]struct{}{}, rotated: t}
	}
	return w
}

// Key is the fingerprint of a pair.
func (w *Window) Key(sensorID, eventID string) uint64 {
	var h maphash.Hash
	h.SetSeed(w.seed)
	h.WriteString(sensorID)
	h.WriteByte(0)
	h.WriteString(eventID)
	return h.Sum64()
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
	if _, ok := s.cur[key]; ok {
		return Done
	}
	if _, ok := s.prev[key]; ok {
		return Done
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
		s.cur[k] = struct{}{}
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
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}

func (w *Window) rotate(s *shard) {
	now := w.now()
	switch {
	case now.Sub(s.rotated) >= 2*w.window:
		clear(s.prev)
		clear(s.cur)
		s.rotated = now
	case now.Sub(s.rotated) >= w.window:
		// A new map sized like the last generation avoids regrowing it step by step.
		s.prev, s.cur = s.cur, make(map[uint64]struct{}, len(s.cur))
		s.rotated = now
	}
}
