// Package clock is the correlator's event-time clock: a watermark computed from per-source
// clocks so that no single source can move it, which both engines use (the streaming
// engine per partition, over its events; the scheduler over ClickHouse's detections).
//
// A source is a sensor (sensor_id). An event is a clock reading only if its time is within
// bounds: not later than when ingest received it, nor than wall time, plus MaxSkew; not
// older than its receipt minus Retention (what ClickHouse keeps). A source's clock is the
// latest reading it gave; its arrival is the latest receipt time (received_at, set by
// ingest, never by the sensor) among them. The arrival clock is the latest arrival of all
// sources. Then:
//
//   - a source is active while its arrival is within IdleTimeout of the arrival clock: a
//     silent or stalled sensor stops holding the watermark back once the others have gone
//     on delivering for IdleTimeout;
//   - an active source is on time while its clock is within SourceLateness of its own
//     arrival (a sensor uploading a backlog, or with a clock stuck in the past, is late: its
//     events are late data, it does not hold the watermark back);
//   - the watermark is the Quantile (nearest rank, from below) of the clocks of the
//     on-time sources — of the active ones when none is on time (a backlog replayed by
//     every sensor) — never beyond the arrival clock plus MaxSkew, and never moving back.
//
// One source therefore cannot move the watermark forward (its readings are bounded, and a
// low quantile ignores the highest clocks), nor hold it back longer than IdleTimeout plus
// SourceLateness (it goes idle or late). Everything but the wall-time bound is a function of
// the events, so replaying the same events gives the same watermark.
package clock

import (
	"fmt"
	"slices"
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// Config bounds the event clock (config block event_clock).
type Config struct {
	// MaxSkew is how far beyond wall time (and beyond its receipt) an event time may be and
	// still be a clock reading; later ones are refused as from the future.
	MaxSkew time.Duration `yaml:"max_skew"`
	// Retention is how old an event may be, from its receipt, and still be read: older
	// events are beyond what ClickHouse keeps (the detections TTL).
	Retention time.Duration `yaml:"retention"`
	// IdleTimeout is how long (arrival time) a source may stay silent while others deliver
	// before it stops holding the watermark back.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SourceLateness is how far a source's clock may lag its own arrivals and still hold
	// the watermark back.
	SourceLateness time.Duration `yaml:"source_lateness"`
	// Quantile of the sources' clocks that is the watermark: 0 is the slowest on-time
	// source, 0.1 ignores the slowest tenth.
	Quantile float64 `yaml:"quantile"`
	// Lateness is how far behind the streaming watermark an event is still applied to a
	// streaming rule, beyond the rule's window (streaming only; scheduled rules have their
	// own schedule.lateness).
	Lateness time.Duration `yaml:"lateness"`
}

// DefaultConfig allows 5 minutes of skew (as ingest does), keeps 90 days (the TTL), and
// lets a source hold the watermark while it delivers within 5 minutes and lags by less
// than an hour.
func DefaultConfig() Config {
	return Config{
		MaxSkew: event.ClockSkew, Retention: event.Retention, IdleTimeout: 5 * time.Minute,
		SourceLateness: time.Hour, Quantile: 0.1, Lateness: time.Hour,
	}
}

// Validate names the bad field.
func (c Config) Validate(prefix string) error {
	switch {
	case c.MaxSkew < 0:
		return fmt.Errorf("%s.max_skew: must not be negative", prefix)
	case c.Retention <= 0:
		return fmt.Errorf("%s.retention: must be positive", prefix)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("%s.idle_timeout: must be positive", prefix)
	case c.SourceLateness < 0:
		return fmt.Errorf("%s.source_lateness: must not be negative", prefix)
	case c.Quantile < 0 || c.Quantile >= 1:
		return fmt.Errorf("%s.quantile: must be in [0, 1)", prefix)
	case c.Lateness < 0:
		return fmt.Errorf("%s.lateness: must not be negative", prefix)
	}
	return nil
}

// Verdict says whether an event time is a reading.
type Verdict uint8

const (
	// InBounds is a reading.
	InBounds Verdict = iota
	// Future is later than its receipt (or wall time) plus MaxSkew.
	Future
	// BeyondRetention is older than its receipt minus Retention.
	BeyondRetention
)

func (v Verdict) String() string {
	switch v {
	case Future:
		return "future"
	case BeyondRetention:
		return "beyond_retention"
	}
	return "in_bounds"
}

// Check judges event time t received at r, at wall time now (all ms since the epoch). A
// receipt time of 0 (unknown) or later than now counts as now.
func (c Config) Check(t, r, now int64) Verdict {
	if r <= 0 || r > now {
		r = now
	}
	switch {
	case t > r+c.MaxSkew.Milliseconds():
		return Future
	case t < r-c.Retention.Milliseconds():
		return BeyondRetention
	}
	return InBounds
}

// Reading is one source's clock: its latest event time and its latest arrival (ms).
type Reading struct {
	Source  string
	Clock   int64
	Arrival int64
}

// Watermark computes the watermark (ms) of readings, at least prev: see the package
// comment. scratch is reused to sort (may be nil). It returns the number of sources that
// held the watermark (on time, or active when none was).
func (c Config) Watermark(readings []Reading, prev int64, scratch []int64) (int64, int, []int64) {
	var arrival int64
	for i := range readings {
		arrival = max(arrival, readings[i].Arrival)
	}
	idle, late := arrival-c.IdleTimeout.Milliseconds(), c.SourceLateness.Milliseconds()
	clocks := scratch[:0]
	for i := range readings {
		if r := &readings[i]; r.Arrival >= idle && r.Clock >= r.Arrival-late {
			clocks = append(clocks, r.Clock)
		}
	}
	if len(clocks) == 0 {
		for i := range readings {
			if r := &readings[i]; r.Arrival >= idle {
				clocks = append(clocks, r.Clock)
			}
		}
	}
	if len(clocks) == 0 {
		return prev, 0, clocks
	}
	slices.Sort(clocks)
	w := min(clocks[int(c.Quantile*float64(len(clocks)-1))], arrival+c.MaxSkew.Milliseconds())
	return max(prev, w), len(clocks), clocks
}
