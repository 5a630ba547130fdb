package sched_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	ref "github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// plantScheduled returns a background of 35 days at 12 facilities whose feeds exist since
// 200 days before it (every rule's history is covered) and, when plant is set, one planted
// pattern per scheduled rule ending near the last day, with the expected alerts.
func plantScheduled(t testing.TB, plant bool) ([]event.Enriched, []scenario.Expect, time.Time) {
	return plantScheduledFeed(t, plant, 200)
}

// plantScheduledFeed is plantScheduled with the feeds starting feedDays before the
// background (0: with it).
func plantScheduledFeed(t testing.TB, plant bool, feedDays int) ([]event.Enriched, []scenario.Expect, time.Time) {
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 11, "s")
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-36 * 24 * time.Hour)
	es, residents := g.Background(t0, 35, 12, 8, 6)
	if feedDays > 0 {
		for i := 0; i < 12; i++ {
			es = append(es, g.FeedStart(g.Facility(i), t0.Add(-time.Duration(feedDays)*24*time.Hour)))
		}
	}
	var want []scenario.Expect
	if plant {
		day := func(d int, h int) time.Time {
			return t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour)
		}
		ps := []scenario.Planted{
			g.TACSpread("99000001", facilities(g, 0, 6), day(28, 12), day(-60, 12)),
			g.BatchRange("99000002", "512", facilities(g, 6, 3), day(20, 12), day(-60, 12)),
			g.NewTAC("99000003", g.Facility(2), g.Facility(9), day(30, 12)),
			g.SharedSIM(g.Facility(4), day(33, 12)),
			g.DroneThenNewDevice(g.Facility(5), day(34, 12)),
			g.SyncBurst(facilities(g, 1, 6), residents, day(34, 18)),
			g.SearchMiss(g.Facility(10), day(34, 12)),
		}
		for _, p := range ps {
			es = append(es, p.Events...)
			want = append(want, p.Expect...)
		}
	}
	// The clock: one event an hour after the last day, so that every rule's last step closes.
	end := t0.Add(35 * 24 * time.Hour)
	d := g.NewDevice(scenario.CommonTACs[0])
	es = append(es, g.Radio(event.KindMASAttach, d, g.Facility(0), end.Add(time.Hour)))
	es = append(es, g.Radio(event.KindMASAttach, d, g.Facility(0), end.Add(-23*time.Hour)))
	scenario.SortByTime(es)
	return es, want, end
}

func facilities(g *scenario.Gen, from, n int) []*ref.Facility {
	out := make([]*ref.Facility, n)
	for i := range out {
		out[i] = g.Facility(from + i)
	}
	return out
}

func runScheduler(t *testing.T, es []event.Enriched) (*sched.Scheduler, []alert.Alert, context.Context) {
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return scenario.InsertDetections(ctx, conn, db, es, nil) }, nil))
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	sink := &alert.Memory{}
	chSink, err := alert.NewClickHouseSink(conn, db)
	require.NoError(t, err)
	cfg := sched.DefaultConfig()
	cfg.Backfill = 12 * time.Hour
	cfg.MaxStepsPerTick = 1000
	s := sched.New(cfg, conn, db, rs, alert.Sinks{chSink, sink}, zaptest.NewLogger(t), prometheus.NewRegistry())
	_, err = s.Tick(ctx)
	require.NoError(t, err)
	return s, sink.Alerts, ctx
}

func TestScheduledRulesFireOnPlantedPatterns(t *testing.T) {
	t.Parallel()
	es, want, end := plantScheduled(t, true)
	s, got, ctx := runScheduler(t, es)
	byID := map[string]alert.Alert{}
	for _, a := range got {
		if cur, ok := byID[a.ID]; !ok || a.Version > cur.Version {
			byID[a.ID] = a
		}
		require.NotEmpty(t, a.EvidenceIDs, "%s %s has evidence", a.Rule, a.GroupKey)
		require.NotEmpty(t, a.Explanation)
		t.Logf("%s v%d %s: %s", a.Rule, a.Version, a.GroupKey, a.Explanation)
	}
	var findings []scenario.Expect
	for _, a := range byID {
		findings = append(findings, scenario.Expect{Rule: a.Rule, GroupKey: a.GroupKey, Facilities: a.Facilities})
	}
	require.ElementsMatch(t, want, findings)

	// A second tick finds nothing new: each window is evaluated once.
	n, err := s.Tick(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	t.Run("rollups and evidence days agree", func(t *testing.T) {
		rulesAgreeAcrossSources(t, ctx, s, end)
	})
}

// rulesAgreeAcrossSources checks that a plain BATCH_RANGE (without its growth baseline)
// finds the same on the national rollup as on the per-facility one (facilities and
// evidence included), and that reading evidence only on the days holding a finding's
// earliest events gives the ids a scan of the whole window gives (growth rules included:
// only their new facilities' events), with a bound small enough to cut the days.
func rulesAgreeAcrossSources(t *testing.T, ctx context.Context, s *sched.Scheduler, end time.Time) {
	byID := map[string]*rules.Rule{}
	for _, r := range s.Rules() {
		byID[r.ID] = r
	}
	variant := func(r *rules.Rule, source string, evidenceDays bool, maxEvidence int) *rules.Rule {
		v := *r
		src := *rules.Sources[source]
		if !evidenceDays {
			src.CountByDay = ""
		}
		v.Source, v.MaxEvidence = &src, maxEvidence
		return &v
	}
	batch, spread := byID["BATCH_RANGE"], byID["TAC_SPREAD"]
	require.Equal(t, "serial_block_per_day", batch.Source.Name)
	require.NotNil(t, batch.Growth)
	// The same counts without the baseline, over 60 days, as BATCH_RANGE was before issue 14.
	plainBatch := *batch
	plainBatch.Growth, plainBatch.BaselineWindow, plainBatch.Window = nil, 0, 60*rules.Day
	// Every TAC of the background, without the baseline: many findings, so that batches of
	// one are several.
	everyTAC := *spread
	everyTAC.Growth, everyTAC.BaselineWindow, everyTAC.Window = nil, 0, 30*rules.Day
	everyTAC.Distinct = []rules.DistinctCount{{Field: rules.Fields["facility_id"], Min: 1}}
	// BATCH_RANGE's plant is a finding 4 days before the end (its first device then leaves
	// the window for the baseline).
	batchEnd := end.Add(-4 * rules.Day)
	defer s.SetEvidenceBatch(500, 2000)
	for _, b := range []struct{ max, groups, tuples int }{
		{batch.MaxEvidence, 500, 2000},
		{2, 500, 2000},
		{2, 1, 0}, // one finding per query, the batch's overall days
	} {
		s.SetEvidenceBatch(b.groups, b.tuples)
		max := b.max
		for _, c := range []struct {
			name      string
			got, want *rules.Rule
			at        time.Time
		}{
			{"BATCH_RANGE without baseline, national vs per facility", variant(&plainBatch, "serial_block_national_per_day", true, max), variant(&plainBatch, "serial_block_per_day", false, max), end},
			{"BATCH_RANGE per facility, evidence days", variant(batch, "serial_block_per_day", true, max), variant(batch, "serial_block_per_day", false, max), batchEnd},
			{"TAC_SPREAD evidence days", variant(spread, "tac_per_day", true, max), variant(spread, "tac_per_day", false, max), end},
			{"every TAC, evidence days", variant(&everyTAC, "tac_per_day", true, max), variant(&everyTAC, "tac_per_day", false, max), end},
		} {
			got, err := s.Findings(ctx, c.got, c.at)
			require.NoError(t, err)
			want, err := s.Findings(ctx, c.want, c.at)
			require.NoError(t, err)
			require.NotEmpty(t, want, c.name)
			if c.got.Distinct[0].Min == 1 {
				require.Greater(t, len(want), 5, c.name)
			}
			require.Equal(t, want, got, "%s, max_evidence %d, batches of %d", c.name, max, b.groups)
			for _, f := range got {
				require.Len(t, f.Evidence, min(max, int(f.N)), "%s %s", c.name, f.Key)
			}
		}
	}
}

func TestScheduledRulesSilentOnBackground(t *testing.T) {
	t.Parallel()
	es, _, _ := plantScheduled(t, false)
	_, got, _ := runScheduler(t, es)
	for _, a := range got {
		t.Errorf("unexpected %s %s: %s", a.Rule, a.GroupKey, a.Explanation)
	}
}
