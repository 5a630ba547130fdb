package sched_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// warmRun is a scheduler whose metrics and logs the test reads.
type warmRun struct {
	s    *sched.Scheduler
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
	sink *alert.Memory
	ctx  context.Context
	ins  func(es []event.Enriched)
}

// newWarmRun runs the shipped rules, or those of ids.
func newWarmRun(t *testing.T, ids ...string) *warmRun {
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	all, err := rules.LoadDefault()
	require.NoError(t, err)
	var rs []*rules.Rule
	for _, r := range all {
		if len(ids) == 0 || slices.Contains(ids, r.ID) {
			rs = append(rs, r)
		}
	}
	core, logs := observer.New(zap.InfoLevel)
	run := &warmRun{reg: prometheus.NewRegistry(), logs: logs, sink: &alert.Memory{}, ctx: ctx}
	chSink, err := alert.NewClickHouseSink(conn, db)
	require.NoError(t, err)
	cfg := sched.DefaultConfig()
	cfg.Backfill = 12 * time.Hour
	cfg.MaxStepsPerTick = 1000
	run.s = sched.New(cfg, conn, db, rs, alert.Sinks{chSink, run.sink}, zap.New(core), run.reg)
	run.ins = func(es []event.Enriched) {
		require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	}
	return run
}

func (run *warmRun) tick(t *testing.T) {
	_, err := run.s.Tick(run.ctx)
	require.NoError(t, err)
}

func (run *warmRun) gauge(t *testing.T, name, rule string) float64 {
	mfs, err := run.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rule" && l.GetValue() == rule {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{rule=%q}", name, rule)
	return 0
}

// A feed that starts with the background: after 35 days, the rules that need at most 35
// days find their plants (TAC_SPREAD, SYNC_BURST and DRONE_THEN_NEW_DEVICE need 28 and 30
// days, the plants come after), NEW_TAC_NATIONAL (187 days) finds nothing and says it is
// warming up, in its metrics and in the log, and BATCH_RANGE (42 days) finds nothing: of
// its shipment's three facilities only the first is covered (the sighting of the model 60
// days before, there, is that facility's first event), as is the TAC_SPREAD plant's first
// facility (likewise): 2 of the 12.
func TestFeedStartingWithTheBackground(t *testing.T) {
	t.Parallel()
	es, want, _ := plantScheduledFeed(t, true, 0)
	run := newWarmRun(t)
	run.ins(es)
	run.tick(t)
	var expect []scenario.Expect
	for _, w := range want {
		if w.Rule != "NEW_TAC_NATIONAL" && w.Rule != "BATCH_RANGE" {
			expect = append(expect, w)
		}
	}
	require.Len(t, expect, len(want)-2)
	got := map[string]scenario.Expect{}
	for _, a := range run.sink.Alerts {
		got[a.ID] = scenario.Expect{Rule: a.Rule, GroupKey: a.GroupKey, Facilities: a.Facilities}
	}
	var findings []scenario.Expect
	for _, f := range got {
		findings = append(findings, f)
	}
	require.ElementsMatch(t, expect, findings)
	for rule, covered := range map[string]float64{"NEW_TAC_NATIONAL": 0, "BATCH_RANGE": 2.0 / 12, "TAC_SPREAD": 1, "SYNC_BURST": 1, "DRONE_THEN_NEW_DEVICE": 1, "SEARCH_MISS": 1} {
		require.Equal(t, map[bool]float64{true: 1}[covered == 0], run.gauge(t, "rule_warming_up", rule), rule)
		require.InDelta(t, covered, run.gauge(t, "rule_covered_facilities_ratio", rule), 1e-9, rule)
	}
	warm := run.logs.FilterMessageSnippet("rule warming up").All()
	require.Len(t, warm, 1, "%v", warm)
	require.Equal(t, "NEW_TAC_NATIONAL", warm[0].ContextMap()["rule"])
	require.Contains(t, warm[0].ContextMap(), "first_covered_step")
}

// A rule leaves its warm-up once the data covers a first facility: said in the log once,
// and its gauges follow, as facilities become covered one after the other.
func TestRuleLeavesWarmUp(t *testing.T) {
	t.Parallel()
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 31, "lw")
	day := rules.Day
	t0 := time.Now().UTC().Truncate(day).Add(-40 * day)
	var first, second []event.Enriched
	// Facility 0 reports from t0, facility 1 from t0 + 10 days; traffic every day.
	for d := 0; d < 40; d++ {
		for i := 0; i < 2; i++ {
			if i == 1 && d < 10 {
				continue
			}
			e := g.Radio(event.KindMASAttach, g.NewDevice(scenario.CommonTACs[0]), g.Facility(i), t0.Add(time.Duration(d)*day+time.Hour))
			if d < 20 {
				first = append(first, e)
			} else {
				second = append(second, e)
			}
		}
	}
	run := newWarmRun(t, "TAC_SPREAD", "NEW_TAC_NATIONAL")
	run.ins(first)
	run.tick(t)
	require.Equal(t, 1.0, run.gauge(t, "rule_warming_up", "TAC_SPREAD"))
	require.Equal(t, 0.0, run.gauge(t, "rule_covered_facilities_ratio", "TAC_SPREAD"))
	require.Len(t, run.logs.FilterMessageSnippet("rule warming up").FilterField(zap.String("rule", "TAC_SPREAD")).All(), 1)

	// Day 35: facility 0 has reported for 35 days (covered for 28), facility 1 for 25.
	var upTo35 []event.Enriched
	for _, e := range second {
		if e.ObservedAt.Before(t0.Add(35 * day)) {
			upTo35 = append(upTo35, e)
		}
	}
	run.ins(upTo35)
	run.tick(t)
	require.Equal(t, 0.0, run.gauge(t, "rule_warming_up", "TAC_SPREAD"))
	require.Equal(t, 0.5, run.gauge(t, "rule_covered_facilities_ratio", "TAC_SPREAD"))
	left := run.logs.FilterMessageSnippet("rule leaves warm-up").FilterField(zap.String("rule", "TAC_SPREAD")).All()
	require.Len(t, left, 1)
	require.Equal(t, int64(1), left[0].ContextMap()["facilities_covered"])
	require.Equal(t, 1.0, run.gauge(t, "rule_warming_up", "NEW_TAC_NATIONAL"))

	run.ins(second[len(upTo35):])
	run.tick(t)
	require.Equal(t, 1.0, run.gauge(t, "rule_covered_facilities_ratio", "TAC_SPREAD"), "facility 1 covered too at day 39")
	require.Len(t, run.logs.FilterMessageSnippet("rule leaves warm-up").FilterField(zap.String("rule", "TAC_SPREAD")).All(), 1, "said once")
	require.Empty(t, run.sink.Alerts)
	require.Zero(t, run.sum(t, "scheduled_failures_total"))
}

// sum is the total of a counter vector over its labels (0 when none was counted).
func (run *warmRun) sum(t *testing.T, name string) float64 {
	mfs, err := run.reg.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// facility_coverage counts only event times within ingest's bounds: a sensor whose clock
// says 1900 or 2099, or 10 minutes ahead of its receipt, or 91 days behind it, does not make
// its facility look covered earlier (nor later).
func TestCoverageIgnoresHostileTimes(t *testing.T) {
	t.Parallel()
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 32, "cov")
	conn, db := chtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	f, other := g.Facility(0), g.Facility(1)
	good := g.FeedStart(f, now.Add(-30*rules.Day))
	hostile := []event.Enriched{}
	for _, c := range []struct{ observed, received time.Time }{
		{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), now},
		{time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), now},
		{now.Add(10 * time.Minute), now},
		{now.Add(-91 * rules.Day), now},
	} {
		for _, fac := range []int{0, 1} {
			e := g.FeedStart(g.Facility(fac), c.observed)
			e.ReceivedAt = event.NewTime(c.received)
			hostile = append(hostile, e)
		}
	}
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
		return scenario.InsertDetections(ctx, conn, db, append(hostile, good), nil)
	}, nil))
	rows, err := conn.Query(ctx, "SELECT toString(facility_id), min(first_seen), max(last_seen) FROM `"+db+"`.facility_coverage GROUP BY facility_id")
	require.NoError(t, err)
	defer rows.Close()
	got := map[string][2]time.Time{}
	for rows.Next() {
		var id string
		var first, last time.Time
		require.NoError(t, rows.Scan(&id, &first, &last))
		got[id] = [2]time.Time{first.UTC(), last.UTC()}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string][2]time.Time{f.ID: {good.ObservedAt.Time, good.ObservedAt.Time}}, got, "%s has only hostile times", other.ID)
}
