package sched

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A facility is covered for a need at t when its first event is at or before t - need; the
// first step that can hold a claim is the first step end at or after the earliest first
// event + need.
func TestCoverageCountsAndFirstStep(t *testing.T) {
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	c := coverage{firsts: []time.Time{t0.Add(10 * time.Hour), t0.Add(day), t0.Add(5 * day)}}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{
		{t0.Add(28*day + 10*time.Hour - time.Millisecond), 0},
		{t0.Add(28*day + 10*time.Hour), 1},
		{t0.Add(29 * day), 2},
		{t0.Add(33*day - time.Millisecond), 2},
		{t0.Add(33 * day), 3},
	} {
		require.Equal(t, tc.want, c.covered(28*day, tc.at), "at %s", tc.at)
	}
	first, ok := c.from(28*day, day)
	require.True(t, ok)
	require.Equal(t, t0.Add(29*day), first, "the first daily step at or after day 28 10:00")
	first, _ = c.from(28*day, 10*time.Minute)
	require.Equal(t, t0.Add(28*day+10*time.Hour), first, "on a step end")
	_, ok = coverage{}.from(28*day, day)
	require.False(t, ok, "no facility: no step")
}
