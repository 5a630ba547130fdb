package inflight

// Waiting returns how many reservations wait in line.
func (l *Limiter) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// SetFree replaces what a trim calls (debug.FreeOSMemory).
func (t *Trimmer) SetFree(f func()) { t.free = f }
