// Package sched evaluates the scheduled rules: ClickHouse queries over the rollups (or the
// raw detections) at each step of event time. A rule's steps end at multiples of its
// schedule.every; step E is evaluated once the event-time clock (the latest observed_at in
// ClickHouse) passes E + lateness, then E is recorded as the rule's watermark, so every
// window is evaluated exactly once, in order, across restarts. Data arriving later than the
// lateness allowance is not re-evaluated for windows already closed: it still counts in
// every later window that covers it (sliding windows longer than their step overlap), and
// is otherwise missed — a deliberate trade for alerts that never flap.
package sched

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/retry"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// NationalKey is the group key of findings across groups (baseline_threshold).
const NationalKey = "national"

// Config tunes the scheduler.
type Config struct {
	// Tick is how often (wall clock) the scheduler looks for steps to evaluate.
	Tick time.Duration `yaml:"tick"`
	// Backfill is how far back in event time a rule without a watermark starts (0: only the
	// latest complete step).
	Backfill time.Duration `yaml:"backfill"`
	// MaxStepsPerTick bounds the catch-up work of one tick per rule.
	MaxStepsPerTick int `yaml:"max_steps_per_tick"`
	// QueryTimeout bounds one evaluation.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// DefaultConfig evaluates every 10 s, without backfill.
func DefaultConfig() Config {
	return Config{Tick: 10 * time.Second, MaxStepsPerTick: 50, QueryTimeout: 60 * time.Second}
}

// Validate names the bad field.
func (c Config) Validate(prefix string) error {
	switch {
	case c.Tick <= 0:
		return fmt.Errorf("%s.tick: must be positive", prefix)
	case c.Backfill < 0:
		return fmt.Errorf("%s.backfill: must not be negative", prefix)
	case c.MaxStepsPerTick <= 0:
		return fmt.Errorf("%s.max_steps_per_tick: must be positive", prefix)
	case c.QueryTimeout <= 0:
		return fmt.Errorf("%s.query_timeout: must be positive", prefix)
	}
	return nil
}

// Scheduler runs the scheduled rules against one ClickHouse database.
type Scheduler struct {
	cfg    Config
	conn   driver.Conn
	db     string
	rules  []*rules.Rule
	sink   alert.Sink
	logger *zap.Logger
	m      metrics
	stop   chan struct{}

	// skip turns the pre-check on (tests and benchmarks compare with plain stepping).
	skip bool
	// onEvaluate, when set (tests), sees each step evaluated.
	onEvaluate func(rule string, end time.Time)

	evidenceGroups, evidenceTuples int
}

type metrics struct {
	evaluations *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	failures    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	watermark   *prometheus.GaugeVec
	clock       prometheus.Gauge
}

// New returns a scheduler for the scheduled rules among rs.
func New(cfg Config, conn driver.Conn, database string, rs []*rules.Rule, sink alert.Sink, logger *zap.Logger, reg prometheus.Registerer) *Scheduler {
	f := promauto.With(reg)
	s := &Scheduler{
		cfg: cfg, conn: conn, db: database, sink: sink, logger: logger.Named("scheduler"), stop: make(chan struct{}), skip: true,
		evidenceGroups: evidenceGroups, evidenceTuples: evidenceTuples,
		m: metrics{
			evaluations: f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_scheduled_evaluations_total", Help: "Windows evaluated per scheduled rule."}, []string{"rule"}),
			alerts:      f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_scheduled_alerts_total", Help: "Alert versions emitted per scheduled rule."}, []string{"rule"}),
			failures:    f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_scheduled_failures_total", Help: "Evaluations that failed (retried at the next tick)."}, []string{"rule"}),
			retries:     f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_scheduled_retries_total", Help: "Evaluation attempts retried per scheduled rule."}, []string{"rule"}),
			seconds:     f.NewHistogramVec(prometheus.HistogramOpts{Name: "vigie_correlator_scheduled_evaluation_seconds", Help: "Time to evaluate one window of a scheduled rule.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"rule"}),
			watermark:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigie_correlator_scheduled_watermark_seconds", Help: "End (Unix time) of the last window evaluated per rule."}, []string{"rule"}),
			clock:       f.NewGauge(prometheus.GaugeOpts{Name: "vigie_correlator_event_clock_seconds", Help: "Latest observed_at in ClickHouse (Unix time): the scheduler's event-time clock."}),
		},
	}
	for _, r := range rs {
		if r.Mode == rules.Scheduled {
			s.rules = append(s.rules, r)
		}
	}
	return s
}

// Rules lists the scheduled rules.
func (s *Scheduler) Rules() []*rules.Rule { return s.rules }

// Run ticks until Stop or ctx ends. A failing evaluation is logged, counted and retried at
// the next tick (its watermark did not move).
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("scheduled evaluation", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		case <-t.C:
		}
	}
}

// Stop makes Run return after the evaluation in progress.
func (s *Scheduler) Stop(context.Context) error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	return nil
}

// Clock is the event-time clock: the latest observed_at in detections (zero when empty).
func (s *Scheduler) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(observed_at) FROM `%s`.detections", s.db)).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read event clock: %w", err)
	}
	if t.Unix() <= 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

// Watermark returns the end of the last window evaluated for rule (zero when none).
func (s *Scheduler) Watermark(ctx context.Context, rule string) (time.Time, error) {
	var t time.Time
	q := fmt.Sprintf("SELECT max(window_end) FROM `%s`.correlator_watermarks WHERE rule = ?", s.db)
	if err := s.conn.QueryRow(ctx, q, rule).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read watermark of %s: %w", rule, err)
	}
	if t.Unix() <= 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

func (s *Scheduler) setWatermark(ctx context.Context, rule string, end time.Time, alerts int) error {
	q := fmt.Sprintf("INSERT INTO `%s`.correlator_watermarks (rule, window_end, alerts)", s.db)
	b, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("prepare watermark: %w", err)
	}
	if err := b.Append(rule, end, uint32(alerts)); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append watermark: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write watermark of %s: %w", rule, err)
	}
	return nil
}

// Tick catches every rule up with the clock: for each rule, the steps whose end the clock
// has passed by the rule's lateness, in order. A pre-check (precheck.go) first lists, in one
// query per rule, the steps that can hold a finding; the others are skipped (their
// evaluation would emit nothing). The rules' steps are then evaluated round-robin, one step
// per rule in turn, at most MaxStepsPerTick evaluations per rule, so that a rule with many
// or slow steps does not hold the others back. It returns the alerts emitted.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	var clock time.Time
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		var err error
		clock, err = s.Clock(ctx)
		return err
	}, nil)
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
	var cs []*catchUp
	for _, r := range s.rules {
		c, err := s.plan(ctx, r, clock)
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
			if c.done || c.evaluated >= s.cfg.MaxStepsPerTick {
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
// steps the pre-check keeps or, without a pre-check, the next MaxStepsPerTick steps.
func (s *Scheduler) plan(ctx context.Context, r *rules.Rule, clock time.Time) (*catchUp, error) {
	var wm time.Time
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		var err error
		wm, err = s.Watermark(ctx, r.ID)
		return err
	}, nil)
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
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
		defer cancel()
		var err error
		if out, err = s.Evaluate(qctx, r, end); err != nil {
			return err
		}
		return s.sink.Write(qctx, out)
	}, func(err error) {
		s.m.retries.WithLabelValues(r.ID).Inc()
		s.logger.Info("retrying evaluation", zap.String("rule", r.ID), zap.Error(err))
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

// saveWatermark records how far c is done, when it moved.
func (s *Scheduler) saveWatermark(ctx context.Context, c *catchUp, alerts int) error {
	wm := c.covered()
	if !wm.After(c.saved) {
		return nil
	}
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
		defer cancel()
		return s.setWatermark(qctx, c.rule.ID, wm, alerts)
	}, nil)
	if err != nil {
		return err
	}
	c.saved = wm
	s.m.watermark.WithLabelValues(c.rule.ID).Set(float64(wm.Unix()))
	return nil
}

// result is one group's finding from a query.
type result struct {
	key         string
	values      []string // group values
	n           uint64
	distinct    []uint64
	first, last time.Time
	facilities  []string
	evidence    []string
	// evidenceDays are the days holding the group's earliest events (daily rollups).
	evidenceDays []time.Time
}

// Evaluate computes the findings of r for the step ending at end and turns them into the
// alert versions to emit (new findings, or extensions of findings still open).
func (s *Scheduler) Evaluate(ctx context.Context, r *rules.Rule, end time.Time) ([]alert.Alert, error) {
	var results []result
	var err error
	windowStart := end.Add(-r.Window)
	switch r.Type {
	case rules.ValueCount, rules.NewTerm, rules.EventCount:
		results, err = s.aggregate(ctx, r, end)
	case rules.Sequence:
		windowStart = end.Add(-r.Every - r.Window)
		results, err = s.sequence(ctx, r, end)
	case rules.BaselineThreshold:
		results, err = s.baseline(ctx, r, end)
	default:
		return nil, fmt.Errorf("rule type %s has no scheduled evaluation", r.Type)
	}
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, nil
	}
	open, err := s.openAlerts(ctx, r, end.Add(-r.Window))
	if err != nil {
		return nil, err
	}
	var out []alert.Alert
	for _, res := range results {
		vals := map[string]string{
			"group_key": res.key, "facilities": strings.Join(res.facilities, ", "), "facility_count": strconv.Itoa(len(res.facilities)),
			"count": strconv.FormatUint(res.n, 10), "first": res.first.Format(event.TimeLayout), "last": res.last.Format(event.TimeLayout),
			"window": rules.FormatDuration(r.Window), "history": rules.FormatDuration(r.History),
		}
		for i, g := range r.GroupBy {
			if i < len(res.values) {
				vals[g.Name] = res.values[i]
			}
		}
		for i, d := range r.Distinct {
			vals["distinct."+d.Field.Name] = strconv.FormatUint(res.distinct[i], 10)
		}
		count := res.n
		if len(res.distinct) > 0 {
			count = res.distinct[0]
		}
		next := alert.Alert{
			Rule: r.ID, Severity: r.Severity, GroupKey: res.key, Facilities: res.facilities,
			FirstEvidenceAt: res.first, LastEvidenceAt: res.last, WindowStart: windowStart, WindowEnd: end,
			EvidenceIDs: res.evidence, EvidenceCount: uint32(count), Explanation: r.Explain(vals), UpdatedAt: end,
		}
		if len(next.EvidenceIDs) > r.MaxEvidence {
			next.EvidenceIDs = next.EvidenceIDs[:r.MaxEvidence]
		}
		if prev, ok := open[res.key]; ok {
			if !prev.WindowEnd.Before(end) {
				continue // this step was already evaluated (a crash before its watermark was saved)
			}
			lastEmitted := prev.UpdatedAt
			grew := prev.Extend(&next, r.MaxEvidence)
			if !grew && end.Sub(lastEmitted) < max(r.UpdateEvery, r.Window) && r.Type != rules.BaselineThreshold {
				continue
			}
			prev.UpdatedAt = end
			prev.Version++
			out = append(out, prev)
			continue
		}
		next.ID = alert.ID(r.ID, res.key, end)
		next.CreatedAt = end
		next.Version = 1
		out = append(out, next)
	}
	return out, nil
}

// openAlerts returns the latest version of r's findings whose window ends at or after
// since, by group key.
func (s *Scheduler) openAlerts(ctx context.Context, r *rules.Rule, since time.Time) (map[string]alert.Alert, error) {
	q := fmt.Sprintf("SELECT "+alert.Columns+" FROM `%s`.alerts FINAL WHERE rule = ? AND window_end >= ? ORDER BY window_end", s.db)
	rows, err := s.conn.Query(ctx, q, r.ID, since)
	if err != nil {
		return nil, fmt.Errorf("read open alerts of %s: %w", r.ID, err)
	}
	defer rows.Close()
	out := map[string]alert.Alert{}
	for rows.Next() {
		var a alert.Alert
		if err := rows.Scan(&a.ID, &a.Rule, &a.Severity, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt,
			&a.WindowStart, &a.WindowEnd, &a.EvidenceIDs, &a.EvidenceCount, &a.Explanation, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		for _, t := range []*time.Time{&a.FirstEvidenceAt, &a.LastEvidenceAt, &a.WindowStart, &a.WindowEnd, &a.CreatedAt, &a.UpdatedAt} {
			*t = t.UTC()
		}
		out[a.GroupKey] = a
	}
	return out, rows.Err()
}

func (s *Scheduler) aggregate(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, aggregateQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var out []result
	for rows.Next() {
		res := result{values: make([]string, len(r.GroupBy)), distinct: make([]uint64, len(r.Distinct))}
		dest := make([]any, 0, len(r.GroupBy)+len(r.Distinct)+5)
		for i := range res.values {
			dest = append(dest, &res.values[i])
		}
		for i := range res.distinct {
			dest = append(dest, &res.distinct[i])
		}
		dest = append(dest, &res.n, &res.first, &res.last, &res.facilities, &res.evidence, &res.evidenceDays)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		res.key = rules.JoinGroupKey(r.GroupBy, res.values)
		res.first, res.last = res.first.UTC(), res.last.UTC()
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	if r.Source.Name != "detections" && len(out) > 0 {
		if err := s.groupsEvidence(ctx, r, out, end.Add(-r.Window), end); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Evidence lookups for rollup findings are batched: at most evidenceGroups findings per
// query and, when listing each finding's evidence days, at most evidenceTuples (finding,
// day) pairs (else the batch's overall days), which keeps the query text far below
// ClickHouse's max_query_size (256 KiB).
const (
	evidenceGroups = 500
	evidenceTuples = 2000
)

// groupsEvidence looks up the event ids in detections of findings computed on a rollup, in
// one query per batch of findings (one query per finding would scan the window once per
// finding).
func (s *Scheduler) groupsEvidence(ctx context.Context, r *rules.Rule, out []result, from, to time.Time) error {
	for len(out) > 0 {
		n := min(len(out), s.evidenceGroups)
		if err := s.evidenceBatch(ctx, r, out[:n], from, to); err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

func (s *Scheduler) evidenceBatch(ctx context.Context, r *rules.Rule, out []result, from, to time.Time) error {
	groups := make([]evidenceGroup, len(out))
	byKey := make(map[string]*result, len(out))
	var facilities []string
	seen := map[string]bool{}
	// The rollup's first_seen bounds a group's earliest event from below, and the end of
	// its last evidence day (daily rollups) from above: read only that span.
	earliest, latest := to, from
	tuples := 0
	for i := range out {
		res := &out[i]
		groups[i] = evidenceGroup{values: res.values, days: res.evidenceDays}
		byKey[res.key] = res
		for _, f := range res.facilities {
			if !seen[f] {
				seen[f] = true
				facilities = append(facilities, f)
			}
		}
		earliest = minTime(earliest, res.first)
		if n := len(res.evidenceDays); n > 0 {
			latest = maxTime(latest, res.evidenceDays[n-1].UTC().Add(rules.Day))
		} else {
			latest = to
		}
		tuples += len(res.evidenceDays)
	}
	byDay := r.Source.CountByDay != "" && tuples <= s.evidenceTuples
	if r.Source.Facilities == "" {
		facilities = nil
	}
	if earliest.After(from) {
		from = earliest
	}
	if latest.Before(to) {
		to = latest
	}
	if !from.Before(to) {
		return nil
	}
	sort.Strings(facilities)
	rows, err := s.conn.Query(ctx, groupsEvidenceQuery(s.db, r, groups, byDay, facilities, from, to))
	if err != nil {
		return fmt.Errorf("evidence of %s: %w", r.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]string, len(r.GroupBy))
		dest := make([]any, 0, len(vals)+1)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var ids []string
		dest = append(dest, &ids)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan evidence of %s: %w", r.ID, err)
		}
		if res, ok := byKey[rules.JoinGroupKey(r.GroupBy, vals)]; ok {
			res.evidence = ids
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read evidence of %s: %w", r.ID, err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// evidence looks up event ids in detections for a finding computed on a rollup.
func (s *Scheduler) evidence(ctx context.Context, r *rules.Rule, res *result, from, to time.Time) error {
	conds := make([]string, len(r.GroupBy))
	for i, g := range r.GroupBy {
		conds[i] = rules.Fields[g.Name].Column + " = " + rules.Quote(res.values[i])
	}
	if r.Type == rules.BaselineThreshold {
		conds = []string{"facility_id IN (" + quoteAll(res.facilities) + ")"}
	}
	if err := s.conn.QueryRow(ctx, evidenceQuery(s.db, r, r.Where, conds, from, to)).Scan(&res.evidence); err != nil {
		return fmt.Errorf("evidence of %s %s: %w", r.ID, res.key, err)
	}
	return nil
}

func quoteAll(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = rules.Quote(v)
	}
	return strings.Join(out, ", ")
}

func (s *Scheduler) sequence(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, sequenceQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var out []result
	for rows.Next() {
		var res result
		var key string
		if err := rows.Scan(&key, &res.n, &res.first, &res.last, &res.facilities, &res.evidence); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		res.key, res.values = key, []string{key}
		res.first, res.last = res.first.UTC(), res.last.UTC()
		out = append(out, res)
	}
	return out, rows.Err()
}

func (s *Scheduler) baseline(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, baselineQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var groups []string
	var total uint64
	for rows.Next() {
		var g string
		var n uint64
		var mean, sd float64
		if err := rows.Scan(&g, &n, &mean, &sd); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		groups = append(groups, g)
		total += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	if len(groups) < r.MinGroups {
		return nil, nil
	}
	res := result{key: NationalKey, values: []string{NationalKey}, n: uint64(len(groups)), first: end.Add(-r.Bucket), last: end}
	if r.GroupBy[0].Name == "facility_id" {
		res.facilities = groups
	}
	if err := s.evidence(ctx, r, &res, end.Add(-r.Bucket), end); err != nil {
		return nil, err
	}
	_ = total
	return []result{res}, nil
}
