package app_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigie/vigie/pkg/event"
	schemarules "github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

const partitions = 3

func TestMain(m *testing.M) {
	// kafka-go's DefaultTransport (used by kafka.Client for admin requests) keeps a shared
	// connection pool for the life of the process: not a leak of the correlator's.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*Client).roundTrip"),
		goleak.IgnoreAnyFunction("github.com/ClickHouse/clickhouse-go/v2.(*clickhouse).startAutoCloseIdleConnections"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// scenarioEvents is a background of 30 days at 8 facilities with the streaming patterns
// and two scheduled ones (SIM_CHURN_SHARED_SIM, DRONE_THEN_NEW_DEVICE).
func scenarioEvents(t *testing.T, seed uint64) ([]event.Enriched, []scenario.Expect) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, seed, "e2e")
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-31 * 24 * time.Hour)
	es, _ := g.Background(t0, 30, 8, 8, 4)
	for i := 0; i < 8; i++ { // the facilities report since 40 days before (DRONE_THEN_NEW_DEVICE needs 30)
		es = append(es, g.FeedStart(g.Facility(i), t0.Add(-40*24*time.Hour)))
	}
	day := func(d, h int) time.Time { return t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour) }
	var want []scenario.Expect
	for _, p := range []scenario.Planted{
		g.MultiSite(g.Facility(1), g.Facility(2), day(20, 12)),
		g.ImpossibleTravel(day(25, 12)),
		g.SimChurn(g.Facility(3), day(26, 12)),
		g.SeizedResurrection(g.Facility(4), day(29, 12)),
		g.SharedSIM(g.Facility(5), day(29, 14)),
		g.DroneThenNewDevice(g.Facility(6), day(29, 16)),
	} {
		es = append(es, p.Events...)
		want = append(want, p.Expect...)
	}
	// The clock: an event after the last day so that every scheduled step closes.
	d := g.NewDevice(scenario.CommonTACs[0])
	es = append(es, g.Radio(event.KindMASAttach, d, g.Facility(0), day(30, 1)), g.Radio(event.KindMASAttach, d, g.Facility(0), day(29, 1)))
	scenario.SortByTime(es)
	return es, want
}

func TestEndToEndStreamingAndScheduled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	es, want := scenarioEvents(t, 1)
	e.write(es, e.produce(es))
	r := e.start("g1")
	require.Eventually(t, func() bool { return e.committed("g1") }, 3*time.Minute, 100*time.Millisecond)
	require.Eventually(t, func() bool { return r.svc.Ready(e.ctx) == nil }, time.Minute, 100*time.Millisecond, "ready: kafka, clickhouse")
	require.NoError(t, r.svc.Reload(e.ctx), "SIGHUP reloads the rules and the reference data")
	require.Eventually(t, func() bool { return len(e.stored()) >= len(want) && e.caughtUp(es) }, 3*time.Minute, 500*time.Millisecond)
	require.NoError(t, r.stop())

	got := e.stored()
	require.ElementsMatch(t, want, findings(got))
	pub := e.published()
	for _, a := range got {
		require.Contains(t, pub, a.ID, "%s %s published on the alerts topic", a.Rule, a.GroupKey)
		require.NotEmpty(t, a.EvidenceIDs)
		require.LessOrEqual(t, len(a.EvidenceIDs), 20)
	}
}

// halfwayPatterns is 18 days of background traffic from seed with four streaming patterns
// planted across day 16, 12:15, split there: the events before, those after, and the
// alerts the patterns must raise.
func halfwayPatterns(t *testing.T, seed uint64, prefix string) (before, after []event.Enriched, want []scenario.Expect) {
	t.Helper()
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, seed, prefix)
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-20 * 24 * time.Hour)
	all, _ := g.Background(t0, 18, 6, 6, 4)
	at := func(d, h int) time.Time { return t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour) }
	cut := at(16, 12).Add(15 * time.Minute)
	for _, p := range []scenario.Planted{
		g.MultiSite(g.Facility(1), g.Facility(2), at(13, 13)),
		g.SimChurn(g.Facility(3), at(14, 22)),
		g.SeizedResurrection(g.Facility(4), at(16, 10)),
		g.ImpossibleTravel(at(16, 12)),
	} {
		all = append(all, p.Events...)
		want = append(want, p.Expect...)
	}
	scenario.SortByTime(all)
	for _, ev := range all {
		if ev.ObservedAt.Before(cut) {
			before = append(before, ev)
		} else {
			after = append(after, ev)
		}
	}
	return before, after, want
}

// TestRestartMidPatternNeitherLosesNorDuplicates stops the correlator when each streaming
// pattern is half way, then starts another one in the same group: the second rebuilds
// state (from ClickHouse, and from Kafka for what ClickHouse does not hold yet) and raises
// each alert exactly once.
func TestRestartMidPatternNeitherLosesNorDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The correlator stops at cut (event time): every pattern has events on both sides.
	es, second, want := halfwayPatterns(t, 3, "rs")
	pos := e.produce(es)
	// The writer is behind: ClickHouse holds only the first two thirds of what the first
	// correlator handled; the rest must be replayed from Kafka.
	written := len(es) * 2 / 3
	e.write(es[:written], pos[:written])

	r1 := e.start("g")
	require.Eventually(t, func() bool { return e.committed("g") }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r1.stop())
	before := e.stored()
	require.Empty(t, findings(before), "no pattern is complete before the restart")

	e.produce(second)
	r2 := e.start("g")
	require.Eventually(t, func() bool { return e.committed("g") }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r2.stop())

	got := e.stored()
	require.ElementsMatch(t, want, findings(got))
	pub := e.published()
	for id, versions := range pub {
		seen := map[uint64]int{}
		for _, v := range versions {
			seen[v]++
			require.Equal(t, 1, seen[v], "alert %s version %d published once", id, v)
		}
	}
	require.Len(t, pub, len(want), "one finding per pattern")
}

// TestReplayGivesSameAlerts runs the same input through two fresh correlators (own group,
// database, alerts topic): the alerts are identical, ids and versions included.
func TestReplayGivesSameAlerts(t *testing.T) {
	t.Parallel()
	es, want := scenarioEvents(t, 5)
	var runs [][]alert.Alert
	for i := 0; i < 2; i++ {
		e := newEnv(t)
		e.write(es, e.produce(es))
		r := e.start("replay")
		require.Eventually(t, func() bool { return e.committed("replay") }, 3*time.Minute, 100*time.Millisecond)
		require.Eventually(t, func() bool { return len(e.stored()) >= len(want) && e.caughtUp(es) }, 3*time.Minute, 500*time.Millisecond)
		require.NoError(t, r.stop())
		as := e.stored()
		sort.Slice(as, func(i, j int) bool { return as[i].ID < as[j].ID })
		runs = append(runs, as)
	}
	require.NotEmpty(t, runs[0])
	require.Equal(t, runs[0], runs[1])
}

// TestReloadAppliesNewStreamingRules: a rule added to rules_dir while the correlator runs
// applies after SIGHUP from each partition's next batch, on a state rebuilt with it from
// ClickHouse: it fires on a pattern that follows, not on history.
func TestReloadAppliesNewStreamingRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	names, err := schemarules.FS.ReadDir(".")
	require.NoError(t, err)
	for _, n := range names {
		if n.Name() == "impossible_travel.yaml" || filepath.Ext(n.Name()) != ".yaml" {
			continue
		}
		data, err := schemarules.FS.ReadFile(n.Name())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, n.Name()), data, 0o644))
	}
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 8, "rl")
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-10 * 24 * time.Hour)
	first, _ := g.Background(t0, 4, 4, 4, 4)
	before := g.ImpossibleTravel(t0.Add(50 * time.Hour))
	first = append(first, before.Events...)
	scenario.SortByTime(first)
	e.write(first, e.produce(first))

	cfg := e.config("reload")
	cfg.RulesDir, cfg.Scheduled = dir, false
	r := e.run(cfg, "reload")
	require.Eventually(t, func() bool { return e.committed("reload") }, 3*time.Minute, 100*time.Millisecond)
	rulesOf := func() map[string]int {
		out := map[string]int{}
		for _, a := range e.stored() {
			out[a.Rule]++
		}
		return out
	}
	require.Equal(t, map[string]int{"DEVICE_MULTI_SITE": 1}, rulesOf(), "without IMPOSSIBLE_TRAVEL")

	data, err := schemarules.FS.ReadFile("impossible_travel.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "impossible_travel.yaml"), data, 0o644))
	require.NoError(t, r.svc.Reload(e.ctx))
	after := g.ImpossibleTravel(t0.Add(100 * time.Hour))
	e.write(after.Events, e.produce(after.Events))
	require.Eventually(t, func() bool { return e.committed("reload") && len(e.stored()) >= 3 }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r.stop())
	require.Equal(t, map[string]int{"DEVICE_MULTI_SITE": 2, "IMPOSSIBLE_TRAVEL": 1}, rulesOf())
	for _, a := range e.stored() {
		if a.Rule == "IMPOSSIBLE_TRAVEL" {
			require.Equal(t, after.Expect[0].GroupKey, a.GroupKey, "the pattern after the reload, not the one before")
		}
	}
}
