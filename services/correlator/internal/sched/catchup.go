package sched

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Tick catches every rule up with the clock: for each rule, the steps whose end the clock
// has passed by the rule's lateness, in order. A pre-check (precheck.go) first lists, in one
// query per rule, the steps that can hold a finding; the others are skipped (their
// evaluation would emit nothing). The rules' steps are then evaluated round-robin, one step
// per rule in turn, at most MaxStepsPerTick evaluations per rule, so that a rule with many
// or slow steps does not hold the others back. It returns the alerts emitted.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	var clock time.Time
	err := s.retry(ctx, "", func(ctx context.Context) error {
		var err error
		clock, err = s.Clock(ctx)
		return err
	})
	if err != nil || clock.IsZero() {
		return 0, err
	}
	s.m.clock.Set(float64(clock.Unix()))
	var firstErr error
	fail := func(r *rules.Rule, err error) {
		s.m.failures.WithLabelValues(r.ID).Inc()
		if firstErr == nil {
			firstErr = fmt.Errorf("rule %s: %w", r.ID, err)
		}
	}
	var cov coverage
	covErr := s.retry(ctx, "", func(ctx context.Context) error {
		var err error
		cov, err = s.readCoverage(ctx)
		return err
	})
	var cs []*catchUp
	for _, r := range s.Rules() {
		if need, _ := r.Needs(); need > 0 && covErr != nil {
			fail(r, covErr) // its steps wait for the coverage; the other rules go on
			continue
		}
		c, err := s.plan(ctx, r, clock, cov)
		if err != nil {
			fail(r, err)
			continue
		}
		cs = append(cs, c)
	}
	total := 0
	for active := true; active && ctx.Err() == nil; {
		active = false
		for _, c := range cs {
			if c.done || c.evaluated >= s.cfg.MaxStepsPerTick || s.stopped.Err() != nil {
				continue
			}
			n, err := s.step(ctx, c)
			total += n
			if err != nil {
				fail(c.rule, err)
				c.done = true
				continue
			}
			active = true
		}
	}
	for _, c := range cs {
		if err := s.saveWatermark(ctx, c, 0); err != nil {
			fail(c.rule, err)
		}
		if covErr == nil && !c.saved.IsZero() {
			s.reportCoverage(c.rule, cov, c.saved)
		}
	}
	return total, firstErr
}

// catchUp is one rule's work in a tick: the steps ending after from, up to until, of which
// only steps (in order) need an evaluation.
type catchUp struct {
	rule        *rules.Rule
	from, until time.Time
	steps       []time.Time
	evaluated   int
	done        bool
	saved       time.Time // the watermark last written
}

// covered is the end of the last step known done: every step up to it evaluated or skipped.
func (c *catchUp) covered() time.Time {
	if len(c.steps) > 0 {
		return c.steps[0].Add(-c.rule.Every)
	}
	return c.until
}

// plan reads r's watermark and lists the steps to evaluate up to clock - lateness: the
// steps the pre-check keeps or, without a pre-check, the next MaxStepsPerTick steps. The
// steps that end before any facility's data covers the history r needs are skipped: they
// can hold no claim (the watermark moves over them; data arriving later that shows an
// older feed does not bring them back, as for any late data).
func (s *Scheduler) plan(ctx context.Context, r *rules.Rule, clock time.Time, cov coverage) (*catchUp, error) {
	var wm time.Time
	err := s.retry(ctx, r.ID, func(ctx context.Context) error {
		var err error
		wm, err = s.loadWatermark(ctx, r.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	limit := clock.Add(-r.Lateness)
	if wm.IsZero() {
		wm = limit.Add(-s.cfg.Backfill).Truncate(r.Every).Add(-r.Every)
	}
	c := &catchUp{rule: r, from: wm, saved: wm}
	n := int(limit.Sub(wm) / r.Every)
	if n <= 0 {
		c.until, c.done = wm, true
		return c, nil
	}
	c.until = wm.Add(time.Duration(n) * r.Every)
	if need, _ := r.Needs(); need > 0 {
		first, ok := cov.from(need, r.Every)
		if !ok || first.After(c.until) {
			c.done = true // warming up: no step up to the clock can hold a claim
			return c, nil
		}
		if first.Add(-r.Every).After(wm) {
			wm = first.Add(-r.Every)
			n = int(limit.Sub(wm) / r.Every)
		}
	}
	if s.skip {
		steps, ok, err := s.candidates(ctx, r, wm, c.until)
		switch {
		case err != nil:
			s.logger.Warn("pre-check failed, stepping every window", zap.String("rule", r.ID), zap.Error(err))
		case ok:
			c.steps = steps
			c.done = len(steps) == 0
			return c, nil
		}
	}
	// Plain stepping: every step, at most one tick's worth (the rest is for later ticks).
	n = min(n, s.cfg.MaxStepsPerTick)
	c.until = wm.Add(time.Duration(n) * r.Every)
	for end := wm.Add(r.Every); !end.After(c.until); end = end.Add(r.Every) {
		c.steps = append(c.steps, end)
	}
	return c, nil
}

// step evaluates c's next step and writes its alerts.
func (s *Scheduler) step(ctx context.Context, c *catchUp) (int, error) {
	r, end := c.rule, c.steps[0]
	start := time.Now()
	if s.onEvaluate != nil {
		s.onEvaluate(r.ID, end)
	}
	var out []alert.Alert
	err := s.retry(ctx, r.ID, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, s.cfg.EvaluationTimeout)
		defer cancel()
		var err error
		if out, err = s.Evaluate(qctx, r, end); err != nil {
			return err
		}
		return s.sink.Write(qctx, out)
	})
	if err != nil {
		return 0, fmt.Errorf("window ending %s: %w", end.Format(event.TimeLayout), err)
	}
	c.steps = c.steps[1:]
	c.evaluated++
	c.done = len(c.steps) == 0
	s.m.seconds.WithLabelValues(r.ID).Observe(time.Since(start).Seconds())
	s.m.evaluations.WithLabelValues(r.ID).Inc()
	s.m.alerts.WithLabelValues(r.ID).Add(float64(len(out)))
	if len(out) > 0 {
		s.logger.Info("alerts", zap.String("rule", r.ID), zap.Time("window_end", end), zap.Int("alerts", len(out)))
		// The watermark is saved after each step that emitted alerts and at the end of the
		// tick, not after every empty step: a crash in between re-evaluates a few steps,
		// which finds the same findings (same ids) and skips those already extended.
		if err := s.saveWatermark(ctx, c, len(out)); err != nil {
			return len(out), err
		}
	}
	return len(out), nil
}
