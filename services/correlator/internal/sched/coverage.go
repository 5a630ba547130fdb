package sched

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// coverage is since when each facility's feed exists: the first event time of each
// facility in facility_coverage (migration 0007), sorted. A facility is covered for a need
// H at time t when its first event is at or before t - H. The queries check coverage
// themselves (coveredCond); the scheduler reads it once per tick to skip the steps no
// facility covers yet and to say, per rule, how much of the feed its history covers.
type coverage struct {
	firsts []time.Time
}

// readCoverage reads the first event time of every facility.
func (s *Scheduler) readCoverage(ctx context.Context) (coverage, error) {
	q := fmt.Sprintf("SELECT min(first_seen) AS f FROM `%s`.facility_coverage GROUP BY facility_id ORDER BY f", s.db)
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return coverage{}, fmt.Errorf("read facility coverage (migration 0007; vigiectl migrate applies it): %w", err)
	}
	defer rows.Close()
	var c coverage
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			return coverage{}, fmt.Errorf("read facility coverage: %w", err)
		}
		c.firsts = append(c.firsts, t.UTC())
	}
	if err := rows.Err(); err != nil {
		return coverage{}, fmt.Errorf("read facility coverage: %w", err)
	}
	return c, nil
}

// covered is how many facilities are covered for need at t.
func (c coverage) covered(need time.Duration, t time.Time) int {
	n, _ := slices.BinarySearchFunc(c.firsts, t.Add(-need), func(a, b time.Time) int {
		if a.After(b) {
			return 1
		}
		return -1 // ties count as covered: first <= t - need
	})
	return n
}

// from is the end of the first step of every at which some facility is covered for need:
// the steps before it can hold no claim that needs the history (zero time: none yet).
func (c coverage) from(need, every time.Duration) (time.Time, bool) {
	if len(c.firsts) == 0 {
		return time.Time{}, false
	}
	t := c.firsts[0].Add(need)
	if e := t.Truncate(every); e.Equal(t) {
		return e, true
	}
	return t.Truncate(every).Add(every), true
}

// warmUp is a rule's coverage as the metrics and logs say it.
type warmUp struct {
	known   bool
	warming bool
}

// reportCoverage sets r's coverage gauges at its watermark and logs when it leaves its
// warm-up (the first facility its history covers) or, at the first report, that it is
// warming up and when it will be done.
func (s *Scheduler) reportCoverage(r *rules.Rule, c coverage, at time.Time) {
	need, why := r.Needs()
	ratio, warming := 1.0, false
	covered := len(c.firsts)
	if need > 0 {
		covered = c.covered(need, at)
		warming = covered == 0
		ratio = 0
		if len(c.firsts) > 0 {
			ratio = float64(covered) / float64(len(c.firsts))
		}
	}
	s.m.covered.WithLabelValues(r.ID).Set(ratio)
	gauge := 0.0
	if warming {
		gauge = 1
	}
	s.m.warmingUp.WithLabelValues(r.ID).Set(gauge)
	s.warmMu.Lock()
	prev := s.warm[r.ID]
	s.warm[r.ID] = warmUp{known: true, warming: warming}
	s.warmMu.Unlock()
	fields := []zap.Field{zap.String("rule", r.ID), zap.Duration("needs", need), zap.String("derived_from", why),
		zap.Time("at", at), zap.Int("facilities_covered", covered), zap.Int("facilities", len(c.firsts))}
	switch {
	case warming && !prev.known:
		if first, ok := c.from(need, r.Every); ok {
			fields = append(fields, zap.Time("first_covered_step", first))
		}
		s.logger.Info("rule warming up: no facility's data covers the history its claims need yet", fields...)
	case !warming && prev.known && prev.warming:
		s.logger.Info("rule leaves warm-up: the data covers its history at a first facility", fields...)
	}
}
