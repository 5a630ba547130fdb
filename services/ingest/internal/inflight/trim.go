package inflight

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// Trimmer gives the memory of a burst back to the operating system once the burst is over.
// Without it a process stays near its peak size for minutes after a burst of large bodies:
// Go's runtime keeps freed heap for reuse, collects an idle process only every two minutes
// and returns pages to the system gradually after that.
type Trimmer struct {
	l         *Limiter
	every     time.Duration
	threshold int64
	free      func()
	onTrim    func()
	burst     bool
}

// NewTrimmer checks l every interval: once the requests held at least threshold bytes at
// once and then hold none, it collects garbage and returns the free memory to the system,
// at most once per interval, and calls onTrim (may be nil).
func NewTrimmer(l *Limiter, every time.Duration, threshold int64, onTrim func()) *Trimmer {
	return &Trimmer{l: l, every: every, threshold: threshold, free: free, onTrim: onTrim}
}

// free collects twice, so that what sync.Pools held (kept for one collection more) goes
// too, and returns the free memory to the system.
func free() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Run checks until ctx ends.
func (t *Trimmer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.Check()
		}
	}
}

// Check trims if a burst is over, and reports whether it did.
func (t *Trimmer) Check() bool {
	high, now := t.l.TakeHigh()
	if high >= t.threshold {
		t.burst = true
	}
	if !t.burst || now > 0 {
		return false
	}
	t.burst = false
	t.free()
	if t.onTrim != nil {
		t.onTrim()
	}
	return true
}
