// Package sched evaluates the scheduled rules: ClickHouse queries over the rollups (or the
// raw detections) at each step of event time. A rule's steps end at multiples of its
// schedule.every; step E is evaluated once the event-time clock (the watermark of the
// sensors' clocks in ClickHouse, internal/clock) passes E + lateness, then E is recorded as
// the rule's watermark, so every window is evaluated exactly once, in order, across
// restarts. Data arriving later than the lateness allowance is not re-evaluated for windows
// already closed: it still counts in every later window that covers it (sliding windows
// longer than their step overlap), and is otherwise missed — a deliberate trade for alerts
// that never flap.
package sched

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/clock"
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
	// EvaluationTimeout bounds one step's evaluation (its queries and the write of its
	// alerts), one pre-check and one watermark write; clickhouse.query_timeout bounds each
	// wait for the server within them.
	EvaluationTimeout time.Duration `yaml:"evaluation_timeout"`
	// EventClock bounds the event-time clock (the service's event_clock block).
	EventClock clock.Config `yaml:"-"`
}

// DefaultConfig evaluates every 10 s, without backfill.
func DefaultConfig() Config {
	return Config{Tick: 10 * time.Second, MaxStepsPerTick: 50, EvaluationTimeout: 60 * time.Second, EventClock: clock.DefaultConfig()}
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
	case c.EvaluationTimeout <= 0:
		return fmt.Errorf("%s.evaluation_timeout: must be positive", prefix)
	}
	return c.EventClock.Validate("event_clock")
}

// Scheduler runs the scheduled rules against one ClickHouse database.
type Scheduler struct {
	cfg    Config
	conn   driver.Conn
	db     string
	rules  atomic.Pointer[[]*rules.Rule] // swapped by SetRules
	sink   alert.Sink
	logger *zap.Logger
	m      metrics

	// stopped ends on Stop: no retry starts after it, the attempt under way finishes.
	stopped context.Context
	stop    context.CancelFunc

	// skip turns the pre-check on (tests and benchmarks compare with plain stepping).
	skip bool
	// onEvaluate, when set (tests), sees each step evaluated.
	onEvaluate func(rule string, end time.Time)

	evidenceGroups, evidenceTuples int

	// clock is the event clock last read (ms; it never moves back); now reads wall time.
	clock atomic.Int64
	now   func() time.Time

	// ref names phone models in explanations (SetReference).
	ref atomic.Pointer[reference.Snapshot]

	// warm is each rule's warm-up as last reported (reportCoverage).
	warmMu sync.Mutex
	warm   map[string]warmUp
}

type metrics struct {
	evaluations *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	failures    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	watermark   *prometheus.GaugeVec
	clock       prometheus.Gauge
	sources     prometheus.Gauge
	discarded   *prometheus.CounterVec
	warmingUp   *prometheus.GaugeVec
	covered     *prometheus.GaugeVec
}

// New returns a scheduler for the scheduled rules among rs. Its metrics are named without
// the vigie_correlator_ prefix: reg is the service's prefixing Registerer.
func New(cfg Config, conn driver.Conn, database string, rs []*rules.Rule, sink alert.Sink, logger *zap.Logger, reg prometheus.Registerer) *Scheduler {
	f := promauto.With(reg)
	s := &Scheduler{
		cfg: cfg, conn: conn, db: database, sink: sink, logger: logger.Named("scheduler"), skip: true, now: time.Now,
		evidenceGroups: evidenceGroups, evidenceTuples: evidenceTuples,
		m: metrics{
			evaluations: f.NewCounterVec(prometheus.CounterOpts{Name: "scheduled_evaluations_total", Help: "Windows evaluated per scheduled rule."}, []string{"rule"}),
			alerts:      f.NewCounterVec(prometheus.CounterOpts{Name: "scheduled_alerts_total", Help: "Alert versions emitted per scheduled rule."}, []string{"rule"}),
			failures:    f.NewCounterVec(prometheus.CounterOpts{Name: "scheduled_failures_total", Help: "Evaluations that failed (retried at the next tick)."}, []string{"rule"}),
			retries:     f.NewCounterVec(prometheus.CounterOpts{Name: "scheduled_retries_total", Help: "Evaluation attempts retried per scheduled rule."}, []string{"rule"}),
			seconds:     f.NewHistogramVec(prometheus.HistogramOpts{Name: "scheduled_evaluation_seconds", Help: "Time to evaluate one window of a scheduled rule.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"rule"}),
			watermark:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "scheduled_watermark_seconds", Help: "End (Unix time) of the last window evaluated per rule."}, []string{"rule"}),
			clock:       f.NewGauge(prometheus.GaugeOpts{Name: "event_clock_seconds", Help: "The scheduler's event-time clock: the watermark of the sensors' clocks in ClickHouse (Unix time)."}),
			sources:     f.NewGauge(prometheus.GaugeOpts{Name: "event_clock_sources", Help: "Sensors whose clocks made the scheduler's event clock at its last reading (active and on time)."}),
			discarded:   f.NewCounterVec(prometheus.CounterOpts{Name: "scheduled_watermarks_discarded_total", Help: "Persisted watermarks found beyond now + max_skew and discarded."}, []string{"rule"}),
			warmingUp: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rule_warming_up",
				Help: "1 while no facility's data covers the history the scheduled rule's claims need (at its watermark), else 0."}, []string{"rule"}),
			covered: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rule_covered_facilities_ratio",
				Help: "Share of the reporting facilities whose data covers the history the scheduled rule's claims need (at its watermark; 1 for a rule that needs none)."}, []string{"rule"}),
		},
		warm: map[string]warmUp{},
	}
	s.stopped, s.stop = context.WithCancel(context.Background())
	s.SetRules(rs)
	return s
}

// Rules lists the scheduled rules.
func (s *Scheduler) Rules() []*rules.Rule { return *s.rules.Load() }

// SetRules replaces the rules with the scheduled rules among rs, from the next tick on (a
// reload). A new rule starts from its watermark, or scheduler.backfill before the clock.
func (s *Scheduler) SetRules(rs []*rules.Rule) {
	var scheduled []*rules.Rule
	for _, r := range rs {
		if r.Mode == rules.Scheduled {
			scheduled = append(scheduled, r)
		}
	}
	s.rules.Store(&scheduled)
}

// Run ticks until Stop or ctx ends. A failing query is retried (retryFor); a rule whose
// step still fails is logged, counted and tried again at the next tick (its watermark did
// not move): a ClickHouse outage delays the scheduler, it never ends it.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil && s.stopped.Err() == nil {
			s.logger.Warn("scheduled evaluation failed, retried at the next tick", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopped.Done():
			return nil
		case <-t.C:
		}
	}
}

// Stop makes Run return after the evaluation in progress (which starts no new retry).
func (s *Scheduler) Stop(context.Context) error {
	s.stop()
	return nil
}

// retryFor is how long one query (or alert write) is retried before its rule waits for the
// next tick.
const retryFor = 30 * time.Second

// retry runs op (with ctx) until it succeeds, retryFor passes, ctx ends or Stop; each retry
// is counted for rule ("" for the clock).
func (s *Scheduler) retry(ctx context.Context, rule string, op func(ctx context.Context) error) error {
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.stopped, cancel)()
	p := retry.Default()
	p.MaxElapsed = retryFor
	return retry.Do(waitCtx, p, func(context.Context) error { return op(ctx) }, func(err error, attempt int, wait time.Duration) {
		if rule != "" {
			s.m.retries.WithLabelValues(rule).Inc()
		}
		s.logger.Info("retrying", zap.String("rule", rule), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	})
}
