package sched_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// catchUpRun is a scheduler over planted events in a database of its own.
type catchUpRun struct {
	s      *sched.Scheduler
	sink   *alert.Memory
	ctx    context.Context
	steps  []string // rule of each evaluation, in order
	byRule map[string]int
}

func newCatchUpRun(t testing.TB, es []event.Enriched, cfg sched.Config, skip bool) *catchUpRun {
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	chSink, err := alert.NewClickHouseSink(conn, db)
	require.NoError(t, err)
	run := &catchUpRun{sink: &alert.Memory{}, ctx: ctx, byRule: map[string]int{}}
	run.s = sched.New(cfg, conn, db, rs, alert.Sinks{chSink, run.sink}, zaptest.NewLogger(t), prometheus.NewRegistry())
	run.s.SetSkipping(skip)
	run.s.OnEvaluate(func(rule string, _ time.Time) {
		run.steps = append(run.steps, rule)
		run.byRule[rule]++
	})
	return run
}

// untilCaughtUp ticks until a tick evaluates nothing and returns the ticks that did.
func (run *catchUpRun) untilCaughtUp(t testing.TB) int {
	for ticks := 0; ; ticks++ {
		before := len(run.steps)
		_, err := run.s.Tick(run.ctx)
		require.NoError(t, err)
		if len(run.steps) == before {
			return ticks
		}
	}
}

func sortedAlerts(as []alert.Alert) []alert.Alert {
	out := append([]alert.Alert(nil), as...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// Skipping the steps the pre-checks rule out gives exactly the alerts of evaluating every
// window, with findings right at window boundaries: the planted drone, burst and search at
// step ends, a new device exactly one window (6 h) after its drone, and a drone in the last
// instant of a step.
func TestSkippingGivesTheAlertsOfSteppingEveryWindow(t *testing.T) {
	t.Parallel()
	es, _, end := plantScheduled(t, true)
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 12, "b")
	edge := end.Add(-2*24*time.Hour + 3*time.Hour) // a step end (10 min, 1 h and 1 d steps)
	last := edge.Add(-time.Millisecond)            // the last instant of the step ending at edge
	es = append(es,
		g.Drone(g.Facility(7), edge), g.Radio(event.KindMASAttach, g.NewDevice(scenario.CommonTACs[0]), g.Facility(7), edge.Add(6*time.Hour)),
		g.Radio(event.KindMASAttach, g.NewDevice(scenario.CommonTACs[1]), g.Facility(7), edge.Add(6*time.Hour)),
		g.Drone(g.Facility(8), last), g.Radio(event.KindMASAttach, g.NewDevice(scenario.CommonTACs[0]), g.Facility(8), last.Add(6*time.Hour)),
		g.Radio(event.KindMASAttach, g.NewDevice(scenario.CommonTACs[1]), g.Facility(8), last.Add(5*time.Hour)),
	)
	scenario.SortByTime(es)

	cfg := sched.DefaultConfig()
	cfg.Backfill = 2 * 24 * time.Hour
	cfg.MaxStepsPerTick = 200
	every := newCatchUpRun(t, es, cfg, false)
	every.untilCaughtUp(t)
	skip := newCatchUpRun(t, es, cfg, true)
	skip.untilCaughtUp(t)

	keys := map[string]bool{}
	for _, a := range every.sink.Alerts {
		keys[a.Rule+" "+a.GroupKey] = true
	}
	for _, want := range []string{"DRONE_THEN_NEW_DEVICE " + g.Facility(7).ID, "DRONE_THEN_NEW_DEVICE " + g.Facility(8).ID, "SYNC_BURST national"} {
		require.True(t, keys[want], "%s fires (alerts: %v)", want, keys)
	}
	require.Equal(t, sortedAlerts(every.sink.Alerts), sortedAlerts(skip.sink.Alerts))
	t.Logf("evaluations: every window %d %v, skipping %d %v", len(every.steps), every.byRule, len(skip.steps), skip.byRule)
	require.Less(t, skip.byRule["DRONE_THEN_NEW_DEVICE"]*2, every.byRule["DRONE_THEN_NEW_DEVICE"])
	require.Less(t, skip.byRule["SYNC_BURST"]*10, every.byRule["SYNC_BURST"])

	// Caught up: both are at the same watermarks and a new tick evaluates nothing.
	for _, r := range every.s.Rules() {
		a, err := every.s.Watermark(every.ctx, r.ID)
		require.NoError(t, err)
		b, err := skip.s.Watermark(skip.ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, a, b, r.ID)
	}
}

// One tick interleaves the rules: each rule's first step comes before any rule's second, so
// a rule with many (or slow) steps does not hold the daily rules back.
func TestTickInterleavesRules(t *testing.T) {
	t.Parallel()
	es, _, _ := plantScheduled(t, false)
	cfg := sched.DefaultConfig()
	cfg.Backfill = 2 * 24 * time.Hour
	cfg.MaxStepsPerTick = 30
	run := newCatchUpRun(t, es, cfg, false)
	_, err := run.s.Tick(run.ctx)
	require.NoError(t, err)
	n := len(run.s.Rules())
	require.Greater(t, len(run.steps), 2*n)
	first := map[string]bool{}
	for _, r := range run.steps[:n] {
		first[r] = true
	}
	require.Len(t, first, n, "the first round evaluates every rule once: %v", run.steps[:n])
	for _, r := range run.s.Rules() {
		require.Equal(t, min(30, run.byRule[r.ID]), run.byRule[r.ID])
	}
	// The daily rules (3 steps) are done within the first 3 rounds, not after the 10-minute
	// rules' 30 steps.
	for i, r := range run.steps {
		if r == "TAC_SPREAD" {
			require.Less(t, i, 3*n, "TAC_SPREAD step at position %d", i)
		}
	}
}
