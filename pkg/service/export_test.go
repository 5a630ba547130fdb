package service

import "time"

// SetReadinessInterval shortens how often the readiness checks run by themselves, for a
// test; it returns the function that restores it.
func SetReadinessInterval(d time.Duration) (restore func()) {
	old := readinessInterval
	readinessInterval = d
	return func() { readinessInterval = old }
}
