package stream

import "hash/maphash"

// identities remembers the identities (sensor_id, event_id) an engine applied, each until
// the watermark passes its event time plus the horizon of the rules it was applied to
// (window + lateness): an event that old is refused as late by those rules anyway, so a
// second delivery is either recognised here or refused there. An identity is a 64-bit hash
// of the pair (see the README for what a collision costs), kept in a set and in one FIFO
// per horizon (few: one per distinct rule window), in arrival order, in chunks, so that
// eviction pops expired heads instead of scanning the set and nothing is ever copied. At
// most max identities are kept: beyond, the oldest are dropped early (counted).
type identities struct {
	set    map[uint64]struct{}
	queues []idQueue
	max    int
	seed   maphash.Seed
	// dropped counts identities dropped before their horizon (max reached).
	dropped uint64
}

// chunkSize is the identities per chunk of a queue (64 KiB).
const chunkSize = 4096

type idQueue struct {
	horizon int64 // ms
	chunks  [][]idItem
	head    int // in chunks[0]
}

type idItem struct {
	key uint64
	t   int64 // event time, ms
}

func newIdentities(max int) identities {
	return identities{set: map[uint64]struct{}{}, max: max, seed: maphash.MakeSeed()}
}

// identity hashes (sensor, event): each string hashed on its own (so ("ab", "c") and ("a",
// "bc") differ), the two mixed.
func (s *identities) identity(sensor, eventID string) uint64 {
	h := maphash.String(s.seed, sensor)
	return (h^(h>>29))*0x9e3779b97f4a7c15 ^ maphash.String(s.seed, eventID)
}

func (s *identities) len() int { return len(s.set) }

// claim adds key to the set and reports whether it was new (one probe of the set). A new
// key is then either kept (keep) or released (release).
func (s *identities) claim(key uint64) bool {
	n := len(s.set)
	s.set[key] = struct{}{}
	return len(s.set) > n
}

// release forgets a key just claimed.
func (s *identities) release(key uint64) { delete(s.set, key) }

// keep queues a claimed key, applied at event time t to rules whose longest horizon is
// horizon, for eviction.
func (s *identities) keep(key uint64, t, horizon int64) {
	q := s.queue(horizon)
	last := len(q.chunks) - 1
	if last < 0 || len(q.chunks[last]) == chunkSize {
		q.chunks = append(q.chunks, make([]idItem, 0, chunkSize))
		last++
	}
	q.chunks[last] = append(q.chunks[last], idItem{key: key, t: t})
	for s.max > 0 && len(s.set) > s.max {
		s.dropOldest()
	}
}

func (s *identities) queue(horizon int64) *idQueue {
	for i := range s.queues {
		if s.queues[i].horizon == horizon {
			return &s.queues[i]
		}
	}
	s.queues = append(s.queues, idQueue{horizon: horizon})
	return &s.queues[len(s.queues)-1]
}

// evict forgets the identities whose event time plus horizon is before watermark wm.
func (s *identities) evict(wm int64) {
	for i := range s.queues {
		q := &s.queues[i]
		for {
			it, ok := q.front()
			if !ok || it.t+q.horizon >= wm {
				break
			}
			delete(s.set, it.key)
			q.pop()
		}
	}
}

// dropOldest forgets the identity that would expire first among the queues' heads.
func (s *identities) dropOldest() {
	var oldest *idQueue
	var at int64
	for i := range s.queues {
		q := &s.queues[i]
		if it, ok := q.front(); ok && (oldest == nil || it.t+q.horizon < at) {
			oldest, at = q, it.t+q.horizon
		}
	}
	if oldest == nil {
		return
	}
	it, _ := oldest.front()
	delete(s.set, it.key)
	oldest.pop()
	s.dropped++
}

func (q *idQueue) front() (idItem, bool) {
	if len(q.chunks) == 0 || q.head >= len(q.chunks[0]) {
		return idItem{}, false
	}
	return q.chunks[0][q.head], true
}

// pop drops the front item; a chunk emptied is let go.
func (q *idQueue) pop() {
	q.head++
	if q.head == chunkSize {
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.head = 0
	}
}
