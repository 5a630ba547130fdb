// Package inflight bounds what ingest holds at once: the requests being handled and the
// bytes of their bodies, decoded, so that its memory does not grow with the load.
//
// A request takes a slot (Enter), refused at once when every slot is taken; it then
// reserves the bytes it expects its body to take (Reserve), waiting in line behind the
// requests that came first until they fit, or until its context ends. A body longer than
// expected (gzip, chunked) grows its reservation as it is read: at once when the bytes are
// free, else it waits at the head of the line, one request at a time, so that requests
// holding bytes never wait for each other in a circle; a second request that would have to
// wait is refused instead.
package inflight

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Errors of a request that does not fit.
var (
	// ErrRequests: every request slot is taken.
	ErrRequests = errors.New("too many requests in flight")
	// ErrBytes: the bytes a request needs were not free in time.
	ErrBytes = errors.New("too many bytes in flight")
)

// Limiter counts requests and bytes in flight. Create it with New.
type Limiter struct {
	maxRequests int
	maxBytes    int64

	mu       sync.Mutex
	requests int
	bytes    int64
	queue    []*waiter // first come, first served; a grower goes first
	grower   *waiter   // the request holding bytes that waits for more, if any
	high     int64     // the most bytes reserved since the last TakeHigh
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once n bytes are granted
}

// New returns a limiter of maxRequests requests and maxBytes bytes.
func New(maxRequests int, maxBytes int64) *Limiter {
	return &Limiter{maxRequests: maxRequests, maxBytes: maxBytes}
}

// MaxBytes is the byte budget.
func (l *Limiter) MaxBytes() int64 { return l.maxBytes }

// MaxRequests is the number of request slots.
func (l *Limiter) MaxRequests() int { return l.maxRequests }

// Bytes returns the bytes reserved now.
func (l *Limiter) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// Requests returns the slots taken now.
func (l *Limiter) Requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

// TakeHigh returns the most bytes reserved at once since the last call, and the bytes
// reserved now, and starts counting again from now.
func (l *Limiter) TakeHigh() (high, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	high, l.high = l.high, l.bytes
	return high, l.bytes
}

// Enter takes a request slot, or returns ErrRequests.
func (l *Limiter) Enter() (*Ticket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests >= l.maxRequests {
		return nil, ErrRequests
	}
	l.requests++
	return &Ticket{l: l}, nil
}

// Ticket is one request's slot and the bytes it holds. It is not safe for concurrent use.
type Ticket struct {
	l     *Limiter
	bytes int64
	left  bool
}

// Bytes returns the bytes the ticket holds.
func (t *Ticket) Bytes() int64 { return t.bytes }

// Reserve adds n bytes to the ticket. A ticket that holds none waits in line until they fit;
// one that holds some (a body longer than expected) gets them at once if they are free, else
// waits at the head of the line if no other ticket does, else is refused. Waiting ends with
// ctx, and then returns ErrBytes. n beyond the whole budget is refused at once.
func (t *Ticket) Reserve(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	l := t.l
	l.mu.Lock()
	if t.bytes+n > l.maxBytes {
		l.mu.Unlock()
		return fmt.Errorf("%w: %d bytes asked, the budget is %d", ErrBytes, t.bytes+n, l.maxBytes)
	}
	grow := t.bytes > 0
	if (grow || len(l.queue) == 0) && l.bytes+n <= l.maxBytes {
		l.grant(n)
		l.mu.Unlock()
		t.bytes += n
		return nil
	}
	if grow && l.grower != nil {
		l.mu.Unlock()
		return fmt.Errorf("%w: another request already waits for more", ErrBytes)
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	if grow {
		l.grower = w
		l.queue = append([]*waiter{w}, l.queue...)
	} else {
		l.queue = append(l.queue, w)
	}
	l.mu.Unlock()

	select {
	case <-w.ready:
		t.bytes += n
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.grower == w {
		l.grower = nil
	}
	select {
	case <-w.ready: // granted meanwhile
		t.bytes += n
		return nil
	default:
	}
	for i, q := range l.queue {
		if q == w {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			break
		}
	}
	l.serve() // the head may have gone: the next ones may fit
	return fmt.Errorf("%w: %d bytes not free within the wait (%v)", ErrBytes, n, ctx.Err())
}

// Shrink gives back what the ticket holds beyond n bytes.
func (t *Ticket) Shrink(n int64) {
	if n < 0 {
		n = 0
	}
	if t.bytes <= n {
		return
	}
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bytes -= t.bytes - n
	t.bytes = n
	l.serve()
}

// Leave gives back the ticket's bytes and slot. Calling it again does nothing.
func (t *Ticket) Leave() {
	if t.left {
		return
	}
	t.Shrink(0)
	t.left = true
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests--
}

// grant takes n bytes; l.mu is held.
func (l *Limiter) grant(n int64) {
	l.bytes += n
	l.high = max(l.high, l.bytes)
}

// serve grants the bytes of the waiters at the head of the line while they fit; l.mu is
// held.
func (l *Limiter) serve() {
	for len(l.queue) > 0 && l.bytes+l.queue[0].n <= l.maxBytes {
		w := l.queue[0]
		l.queue = l.queue[1:]
		l.grant(w.n)
		if w == l.grower {
			l.grower = nil
		}
		close(w.ready)
	}
}
