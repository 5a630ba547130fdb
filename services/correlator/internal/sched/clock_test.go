package sched_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/clock"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// hostile copies some of es's ordinary events (common models, so that only their times
// differ from traffic) with times no sensor should send: 2099, 1900, 0001, 9999, ten
// minutes after now, 91 days before now; each received now, as ingest would stamp it.
func hostile(es []event.Enriched) []event.Enriched {
	now := time.Now().UTC()
	times := []time.Time{
		time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), {},
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), now.Add(10 * time.Minute), now.Add(-91 * 24 * time.Hour),
	}
	var out []event.Enriched
	for i := 0; i < len(es) && len(out) < 60; i += 101 {
		e := es[i]
		if e.IMEIPseudo == "" || !slices.Contains(scenario.CommonTACs, e.TAC) {
			continue
		}
		e.EventID = fmt.Sprintf("hostile-%d", i)
		e.ObservedAt = event.NewTime(times[len(out)%len(times)])
		e.ReceivedAt = event.NewTime(now)
		out = append(out, e)
	}
	return out
}

// (a) Events with hostile times among the normal ones: the scheduled rules fire on the
// normal ones exactly as without them (alert by alert), and every persisted watermark is
// the fault-free run's, at most now + max_skew.
func TestHostileTimesLeaveScheduledRulesAsTheyWere(t *testing.T) {
	t.Parallel()
	es, want, _ := plantScheduled(t, true)
	bad := hostile(es)
	require.Len(t, bad, 60)
	mixed := append(append([]event.Enriched(nil), es...), bad...)
	scenario.SortByTime(mixed)

	clean, cleanAlerts, cleanCtx := runScheduler(t, es)
	s, got, ctx := runScheduler(t, mixed)
	require.Len(t, latestFindings(cleanAlerts), len(want))
	require.Equal(t, sortedAlerts(cleanAlerts), sortedAlerts(got))

	bound := time.Now().Add(sched.DefaultConfig().EventClock.MaxSkew)
	for _, r := range s.Rules() {
		wm, err := s.Watermark(ctx, r.ID)
		require.NoError(t, err)
		require.False(t, wm.IsZero(), r.ID)
		require.False(t, wm.After(bound), "%s: watermark %s", r.ID, wm)
		cwm, err := clean.Watermark(cleanCtx, r.ID)
		require.NoError(t, err)
		require.Equal(t, cwm, wm, r.ID)
	}
}

func latestFindings(as []alert.Alert) map[string]bool {
	out := map[string]bool{}
	for _, a := range as {
		out[a.ID] = true
	}
	return out
}

// (b) A watermark persisted in the future (an older version after an event dated 2099) is
// discarded at start, with a warning and a count: the rules then run as if it had never
// been written, and what they persist is at most now + max_skew.
func TestFutureWatermarkIsDiscardedAtStart(t *testing.T) {
	t.Parallel()
	es, _, _ := plantScheduled(t, true)
	_, want, _ := runScheduler(t, es)
	require.NotEmpty(t, want)

	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	future := time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC)
	var scheduled []string
	for _, r := range rs {
		if r.Mode == rules.Scheduled {
			scheduled = append(scheduled, r.ID)
			require.NoError(t, conn.Exec(ctx, "INSERT INTO `"+db+"`.correlator_watermarks (rule, window_end, alerts) VALUES (?, ?, 0)", r.ID, future))
		}
	}
	sink := &alert.Memory{}
	chSink, err := alert.NewClickHouseSink(conn, db)
	require.NoError(t, err)
	cfg := sched.DefaultConfig()
	cfg.Backfill = 12 * time.Hour
	cfg.MaxStepsPerTick = 1000
	reg := prometheus.NewRegistry()
	s := sched.New(cfg, conn, db, rs, alert.Sinks{chSink, sink}, zaptest.NewLogger(t), reg)
	_, err = s.Tick(ctx)
	require.NoError(t, err)
	require.Equal(t, sortedAlerts(want), sortedAlerts(sink.Alerts))
	bound := time.Now().Add(cfg.EventClock.MaxSkew)
	for _, id := range scheduled {
		wm, err := s.Watermark(ctx, id)
		require.NoError(t, err)
		require.False(t, wm.IsZero(), id)
		require.False(t, wm.After(bound), "%s: watermark %s", id, wm)
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	discarded := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "scheduled_watermarks_discarded_total" {
			for _, m := range mf.GetMetric() {
				discarded[m.GetLabel()[0].GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	require.Len(t, discarded, len(scheduled))
	for _, id := range scheduled {
		require.Equal(t, 1.0, discarded[id], id)
	}
	// A second tick finds nothing to discard nor to evaluate.
	n2, err := s.Tick(ctx)
	require.NoError(t, err)
	require.Zero(t, n2)
}

// (c) A sensor that falls silent, and one whose clock is stuck while it keeps delivering,
// do not freeze the scheduler's clock: it follows the sensors that keep reporting.
func TestSilentSensorDoesNotFreezeTheClock(t *testing.T) {
	t.Parallel()
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 13, "q")
	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	end := t0.Add(2 * time.Hour)
	var es []event.Enriched
	d := g.NewDevice(scenario.CommonTACs[0])
	for m := time.Duration(0); m <= 2*time.Hour; m += time.Minute {
		for f := 0; f < 4; f++ {
			e := g.Radio(event.KindMASAttach, d, g.Facility(f), t0.Add(m))
			switch {
			case f == 0 && m > 10*time.Minute:
				continue // silent after ten minutes
			case f == 1 && m > 10*time.Minute:
				e.ObservedAt = event.NewTime(t0.Add(10 * time.Minute)) // stuck clock, still delivering
			}
			es = append(es, e)
		}
	}
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	cfg := sched.DefaultConfig()
	cfg.EventClock.Quantile = 0 // the slowest sensor holding it: the strictest case
	s := sched.New(cfg, conn, db, rs, &alert.Memory{}, zaptest.NewLogger(t), prometheus.NewRegistry())
	for range 2 { // the first reading scans the retention, the next only the last minutes
		c, err := s.Clock(ctx)
		require.NoError(t, err)
		require.Equal(t, end, c)
	}

	// The clock alone (every sensor held to the slowest, nothing idle or late) would be
	// frozen ten minutes in: what the two sensors would do without idle handling.
	frozen := cfg.EventClock
	frozen.IdleTimeout, frozen.SourceLateness = 24*time.Hour, 24*time.Hour
	var readings []clock.Reading
	for f := 0; f < 4; f++ {
		last := end
		if f < 2 {
			last = t0.Add(10 * time.Minute)
		}
		arrival := end
		if f == 0 {
			arrival = t0.Add(10 * time.Minute)
		}
		readings = append(readings, clock.Reading{Clock: last.UnixMilli(), Arrival: arrival.Add(time.Second).UnixMilli()})
	}
	w, _, _ := frozen.Watermark(readings, 0, nil)
	require.Equal(t, t0.Add(10*time.Minute), time.UnixMilli(w).UTC())
}
