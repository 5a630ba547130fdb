// Package dedup remembers which events ingest has produced to Kafka, as a map from their
// identity (sensor_id, event_id) to their content, so that an event sent again is told
// apart from another event under the same identity: the same content (a retried request, a
// resend after a crash) is acknowledged as a duplicate without being produced twice; other
// content is a conflict, refused, and the first version stays.
//
// Content is the record of detections.raw.v1 as ingest produced it (the event's fields,
// pseudonymised, with the key version) without received_at, the one field stamped per
// receipt. Identity and content are kept as fingerprints (maphash with a per-process seed):
// 64 bits of identity, 32 of content, in open-addressing tables (keys and values in two
// slices: 12 bytes a slot) at a load of 1/2 to 3/4: 16 to 24 bytes per identity (measured
// by BenchmarkMemoryPerEntry: 24.0 at 2^20 entries, where every table had just doubled; 16
// before content was kept). Identities are grouped in generations of
// window/(generations-1): one is remembered for at least window after it was produced and
// at most window × generations/(generations-1), i.e. 12 minutes for the default 10.
// Sustained 20,000 events/s thus holds up to 14.4 M identities, 230 to 345 MB; the 1,000
// events/s of a large facility, 12 to 17 MB.
//
// Errors of the fingerprints: a new event whose identity fingerprint collides with a
// remembered one is wrongly taken for a resend or a conflict, with a chance below
// 14.4e6 / 2^64 ≈ 8e-13 per event; a conflicting event whose content fingerprint collides
// with the first version's is wrongly acknowledged as a duplicate (and not produced: the
// first version still stays), with a chance of 2^-32 per conflict.
//
// The window is not in one process's memory only: Learn records what is read back from
// detections.raw.v1, the durable log (internal/follow rebuilds the window from the topic's
// last window at start and, with dedup_follow, keeps following it, so that replicas learn
// each other's events).
// Its limits: a resend later than the window is produced again (the writer removes that
// copy: it checks identities against the detections table); a resend after a change of
// pseudonymisation key, or of the raw record's encoding, within the window has other
// content and is refused as a conflict.
package dedup

import (
	"bytes"
	"hash/maphash"
	"sync"
	"time"
)

const (
	shards      = 32
	generations = 6
	minTable    = 256
)

// Window is a sharded, generational map from identity fingerprints to content fingerprints,
// with pending reservations.
type Window struct {
	seed   maphash.Seed
	step   time.Duration
	now    func() time.Time
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	gens    [generations]table // gens[0] is the current generation
	pending map[uint64]uint32
	rotated time.Time
}

// table is an open-addressing map of non-zero uint64 keys to uint32 values, with linear
// probing; keys and values in two slices so that a slot costs 12 bytes, not 16.
type table struct {
	keys []uint64
	vals []uint32
	n    int
}

func (t *table) get(k uint64) (uint32, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := uint64(len(t.keys) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// insert adds k with v; a k already there keeps its value (the first version stays).
func (t *table) insert(k uint64, v uint32) {
	if len(t.keys) == 0 {
		t.alloc(minTable)
	}
	if (t.n+1)*4 > len(t.keys)*3 { // load above 3/4: double
		oldK, oldV := t.keys, t.vals
		t.alloc(2 * len(oldK))
		for i, ok := range oldK {
			if ok != 0 {
				t.put(ok, oldV[i])
			}
		}
	}
	t.put(k, v)
}

func (t *table) alloc(size int) {
	t.keys, t.vals, t.n = make([]uint64, size), make([]uint32, size), 0
}

func (t *table) put(k uint64, v uint32) {
	mask := uint64(len(t.keys) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return
		case 0:
			t.keys[i], t.vals[i] = k, v
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
		w.shards[i] = shard{pending: map[uint64]uint32{}, rotated: t}
	}
	return w
}

// Key is the fingerprint of an identity (sensor_id, event_id); never 0.
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

// KeyBytes is Key of identities read as bytes (from Kafka), without copying them.
func (w *Window) KeyBytes(sensorID, eventID []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(w.seed)
	h.Write(sensorID)
	h.WriteByte(0)
	h.Write(eventID)
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

// receivedAt starts the one field of a detections.raw.v1 record that ingest stamps per
// receipt; pkg/event's encoder writes it last. A `,"` cannot occur inside a JSON string
// (its quotes are escaped), so the last match is the field itself.
var receivedAt = []byte(`,"received_at":`)

// Content is the fingerprint of a record of detections.raw.v1 as ingest produced it (event
// fields, pseudonyms and key version), without its received_at: a sensor's resend of the
// same event has the same content, whenever it is received.
func (w *Window) Content(raw []byte) uint32 {
	// The field is the record's last, 42 bytes with its value: look at the tail first.
	tail := max(len(raw)-64, 0)
	if i := bytes.LastIndex(raw[tail:], receivedAt); i >= 0 {
		raw = raw[:tail+i]
	} else if i := bytes.LastIndex(raw, receivedAt); i >= 0 {
		raw = raw[:i]
	}
	h := maphash.Bytes(w.seed, raw)
	return uint32(h ^ h>>32)
}

// Entry is an identity and its content fingerprint.
type Entry struct {
	Key     uint64
	Content uint32
}

// State of a key.
type State int

// States returned by Reserve.
const (
	// Fresh: reserved for this caller, who must Commit or Release it.
	Fresh State = iota
	// Done: produced before with the same content; acknowledge without producing.
	Done
	// Conflict: produced before with other content; the first version stays, refuse this one.
	Conflict
	// Pending: another request is producing it right now; its outcome is not known yet.
	Pending
)

// Reserve looks an entry up and, when its identity is new, reserves it.
func (w *Window) Reserve(e Entry) State {
	s := &w.shards[e.Key%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w.rotate(s)
	for i := range s.gens {
		if c, ok := s.gens[i].get(e.Key); ok {
			if c == e.Content {
				return Done
			}
			return Conflict
		}
	}
	if _, ok := s.pending[e.Key]; ok {
		return Pending
	}
	s.pending[e.Key] = e.Content
	return Fresh
}

// Commit marks reserved entries as produced.
func (w *Window) Commit(entries []Entry) {
	for _, e := range entries {
		s := &w.shards[e.Key%shards]
		s.mu.Lock()
		w.rotate(s)
		delete(s.pending, e.Key)
		if !s.known(e.Key) {
			s.gens[0].insert(e.Key, e.Content)
		}
		s.mu.Unlock()
	}
}

// Release drops reservations of entries that were not produced, so that a retry produces them.
func (w *Window) Release(entries []Entry) {
	for _, e := range entries {
		s := &w.shards[e.Key%shards]
		s.mu.Lock()
		delete(s.pending, e.Key)
		s.mu.Unlock()
	}
}

// Learn records an entry read back from detections.raw.v1, produced at `at` by this process
// or another replica: remembered until at + window (and up to a generation longer), as if
// committed then. An identity already known keeps its first content. A reservation in
// progress does not stop it: the log is the truth, and the request's Commit or Release then
// changes nothing. Entries older than the window are ignored. It reports whether the entry
// was new.
func (w *Window) Learn(e Entry, at time.Time) bool {
	s := &w.shards[e.Key%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w.rotate(s)
	g := 0
	if d := s.rotated.Sub(at); d > 0 {
		g = 1 + int((d-1)/w.step)
	}
	if g >= generations || s.known(e.Key) {
		return false
	}
	s.gens[g].insert(e.Key, e.Content)
	return true
}

func (s *shard) known(k uint64) bool {
	for i := range s.gens {
		if _, ok := s.gens[i].get(k); ok {
			return true
		}
	}
	return false
}

// Len is the number of remembered identities.
func (w *Window) Len() int {
	n := 0
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		w.rotate(s)
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
		s.gens[0].alloc(size)
	}
}
