package clock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/correlator/internal/clock"
)

func TestCheckBoundsEventTimes(t *testing.T) {
	cfg := clock.DefaultConfig()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	received := now.Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		observed time.Time
		received time.Time
		want     clock.Verdict
	}{
		{"normal", received.Add(-time.Second), received, clock.InBounds},
		{"within skew of its receipt", received.Add(5 * time.Minute), received, clock.InBounds},
		{"beyond skew of its receipt", received.Add(5*time.Minute + time.Millisecond), received, clock.Future},
		{"2099", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), received, clock.Future},
		{"9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), received, clock.Future},
		{"1900", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), received, clock.BeyondRetention},
		{"0001", time.Time{}, received, clock.BeyondRetention},
		{"91 days before its receipt", received.Add(-91 * 24 * time.Hour), received, clock.BeyondRetention},
		{"89 days before its receipt", received.Add(-89 * 24 * time.Hour), received, clock.InBounds},
		{"received in the future: wall time bounds it", now.Add(10 * time.Minute), now.Add(time.Hour), clock.Future},
		{"receipt unknown: wall time", now.Add(time.Minute), time.Time{}, clock.InBounds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, cfg.Check(tc.observed.UnixMilli(), tc.received.UnixMilli(), now.UnixMilli()))
		})
	}
}

func TestWatermarkNoSingleSource(t *testing.T) {
	cfg := clock.DefaultConfig()
	cfg.Quantile = 0
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixMilli()
	min := func(m int) int64 { return base + int64(m)*60_000 }
	sources := func(clocks ...int64) []clock.Reading {
		var out []clock.Reading
		for i, c := range clocks {
			out = append(out, clock.Reading{Source: string(rune('a' + i)), Clock: c, Arrival: c + 1000})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		readings []clock.Reading
		prev     int64
		want     int64
		holding  int
	}{
		{"the slowest on-time source", sources(min(0), min(1), min(2)), 0, min(0), 3},
		{"never back", sources(min(0), min(1), min(2)), min(1), min(1), 3},
		{"one source ahead (within skew) moves nothing", append(sources(min(0), min(1)), clock.Reading{Source: "x", Clock: min(6), Arrival: min(2)}), 0, min(0), 3},
		{"a silent source stops holding", append(sources(min(30), min(31)), clock.Reading{Source: "s", Clock: min(10), Arrival: min(10)}), 0, min(30), 2},
		{"a source lagging its own arrivals is late, not a brake",
			append(sources(min(30), min(31)), clock.Reading{Source: "l", Clock: min(30) - 2*3_600_000, Arrival: min(30)}), 0, min(30), 2},
		{"every source lagging (a backlog): the slowest active one",
			[]clock.Reading{{Source: "a", Clock: min(-600), Arrival: min(0)}, {Source: "b", Clock: min(-500), Arrival: min(0)}}, 0, min(-600), 2},
		{"bounded by the arrival clock plus skew", []clock.Reading{{Source: "a", Clock: min(5), Arrival: min(0)}}, 0, min(5), 1},
		{"none", nil, min(3), min(3), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, holding, _ := cfg.Watermark(tc.readings, tc.prev, nil)
			require.Equal(t, time.UnixMilli(tc.want).UTC(), time.UnixMilli(got).UTC())
			require.Equal(t, tc.holding, holding)
		})
	}

	// A low quantile: the slowest tenth does not hold it back.
	cfg.Quantile = 0.1
	var rs []clock.Reading
	for i := range 20 {
		rs = append(rs, clock.Reading{Source: string(rune('a' + i)), Clock: min(i), Arrival: min(20)})
	}
	got, _, _ := cfg.Watermark(rs, 0, nil)
	require.Equal(t, min(1), got)
}

func TestValidateNamesTheKey(t *testing.T) {
	cfg := clock.DefaultConfig()
	require.NoError(t, cfg.Validate("event_clock"))
	cfg.Quantile = 1
	require.ErrorContains(t, cfg.Validate("event_clock"), "event_clock.quantile")
	cfg = clock.DefaultConfig()
	cfg.IdleTimeout = 0
	require.ErrorContains(t, cfg.Validate("event_clock"), "event_clock.idle_timeout")
}
