package sched_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
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

// Replay finds, alert for alert, what a scheduler ticking over the same range raises, and
// writes nothing (no watermark, no alert); a finding of the same rule already in the alerts
// table does not hide the replay's; each rule's history is said.
func TestReplayGivesTheAlertsOfTheScheduler(t *testing.T) {
	t.Parallel()
	es, want, _ := plantScheduled(t, true)
	conn, db, ctx := loaded(t, es)
	rs, err := rules.LoadDefault()
	require.NoError(t, err)

	// The scheduler, twelve hours back from its clock (as TestScheduledRulesFireOnPlantedPatterns), into ClickHouse and memory.
	mem := &alert.Memory{}
	chSink, err := alert.NewClickHouseSink(conn, db)
	require.NoError(t, err)
	cfg := sched.DefaultConfig()
	cfg.Backfill, cfg.MaxStepsPerTick = 12*time.Hour, 1000
	s := sched.New(cfg, conn, db, rs, alert.Sinks{chSink, mem}, zaptest.NewLogger(t), prometheus.NewRegistry())
	_, err = s.Tick(ctx)
	require.NoError(t, err)
	clock, err := s.Clock(ctx)
	require.NoError(t, err)
	ticked := latest(mem.Alerts)
	require.GreaterOrEqual(t, len(ticked), len(want), "the scheduler finds the planted patterns")

	var marks, stored uint64
	count := func() (uint64, uint64) {
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.correlator_watermarks").Scan(&marks))
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.alerts").Scan(&stored))
		return marks, stored
	}
	m0, a0 := count()
	got, err := sched.Replay(ctx, sched.DefaultConfig(), conn, db, rs, clock.Add(-12*time.Hour), clock, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, ticked, got.Alerts, "the replay's findings are the scheduler's, version for version")
	m1, a1 := count()
	require.Equal(t, [2]uint64{m0, a0}, [2]uint64{m1, a1}, "the replay writes no watermark and no alert")

	require.Len(t, got.Rules, len(s.Rules()))
	for i, r := range s.Rules() {
		h := got.Rules[i]
		need, _ := r.Needs()
		require.Equal(t, [2]any{r.ID, need}, [2]any{h.Rule, h.Needs})
		require.Equal(t, [2]int{12, 12}, [2]int{h.Covered, h.Facilities}, "%s: feeds of 235 days cover %s", r.ID, need)
		require.False(t, h.WarmingUp(), r.ID)
	}
}

// On feeds as old as the data (35 days), a rule that needs 180 days is warming up, and one
// that needs 28 is covered from its 28th day on.
func TestReplaySaysWhichRulesWarmUp(t *testing.T) {
	t.Parallel()
	es, _, end := plantScheduledFeed(t, false, 0)
	conn, db, ctx := loaded(t, es)
	all, err := rules.LoadDefault()
	require.NoError(t, err)
	var rs []*rules.Rule
	for _, r := range all {
		if r.ID == "NEW_TAC_NATIONAL" || r.ID == "TAC_SPREAD" {
			rs = append(rs, r)
		}
	}
	require.Len(t, rs, 2)
	got, err := sched.Replay(ctx, sched.DefaultConfig(), conn, db, rs, end.Add(-24*time.Hour), end.Add(time.Hour), zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Empty(t, got.Alerts, "the background alone")
	byRule := map[string]sched.History{}
	for _, h := range got.Rules {
		byRule[h.Rule] = h
	}
	nt, ts := byRule["NEW_TAC_NATIONAL"], byRule["TAC_SPREAD"]
	require.True(t, nt.WarmingUp(), "%+v", nt)
	require.Zero(t, nt.Covered)
	require.Equal(t, 12, nt.Facilities)
	require.False(t, ts.WarmingUp(), "%+v", ts)
	require.Equal(t, 12, ts.Covered)
	// The first step some facility covers: the end of the day holding the first event plus the need.
	var first time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT min(observed_at) FROM `"+db+"`.detections").Scan(&first))
	want := first.Add(ts.Needs)
	if day := want.Truncate(24 * time.Hour); !day.Equal(want) {
		want = day.Add(24 * time.Hour)
	}
	require.Equal(t, want.UTC(), ts.FirstCovered)
}

// loaded is a database of the test's own holding es, and a context for its queries.
func loaded(t *testing.T, es []event.Enriched) (driver.Conn, string, context.Context) {
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	return conn, db, ctx
}

// latest keeps the latest version of each alert, in the order first raised.
func latest(as []alert.Alert) []alert.Alert {
	var out []alert.Alert
	at := map[string]int{}
	for _, a := range as {
		if i, ok := at[a.ID]; ok {
			if a.Version >= out[i].Version {
				out[i] = a
			}
			continue
		}
		at[a.ID] = len(out)
		out = append(out, a)
	}
	return slices.Clip(out)
}
