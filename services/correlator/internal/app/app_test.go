package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sort"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/app"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/retry"
	"github.com/vigie/vigie/services/correlator/internal/rules"
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

// env is one test's infrastructure: an enriched topic, an alerts topic, a database.
type env struct {
	t       testing.TB
	brokers []string
	topic   string
	alerts  string
	conn    driver.Conn
	db      string
	ctx     context.Context
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	e := &env{t: t, brokers: testenv.KafkaBrokers(t)}
	e.topic = testenv.Name(t, "enriched")
	e.alerts = testenv.Name(t, "alerts")
	var cancel context.CancelFunc
	e.ctx, cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, kafka.EnsureTopics(e.ctx, e.brokers,
		kafka.TopicSpec{Name: e.topic, Partitions: partitions, ReplicationFactor: 1},
		kafka.TopicSpec{Name: e.alerts, Partitions: 1, ReplicationFactor: 1}))
	e.conn, e.db = chtest.New(t)
	return e
}

func partitionOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % partitions)
}

// produce writes events to their device's partition, in order, and returns their positions.
func (e *env) produce(es []event.Enriched) []scenario.Position {
	ends, err := kafka.PartitionOffsets(e.ctx, e.brokers, e.topic)
	require.NoError(e.t, err)
	byPart := map[int][]kafkago.Message{}
	pos := make([]scenario.Position, len(es))
	for i := range es {
		p := partitionOf(es[i].Enrichment.DeviceKey)
		v, err := json.Marshal(&es[i])
		require.NoError(e.t, err)
		pos[i] = scenario.Position{Topic: e.topic, Partition: p, Offset: ends[p] + int64(len(byPart[p]))}
		byPart[p] = append(byPart[p], kafkago.Message{Key: []byte(es[i].Enrichment.DeviceKey), Value: v})
	}
	for p, msgs := range byPart {
		conn, err := kafkago.DialLeader(e.ctx, "tcp", e.brokers[0], e.topic, p)
		require.NoError(e.t, err)
		for start := 0; start < len(msgs); start += 1000 {
			_, err = conn.WriteMessages(msgs[start:min(start+1000, len(msgs))]...)
			require.NoError(e.t, err)
		}
		require.NoError(e.t, conn.Close())
	}
	return pos
}

// write stores events in ClickHouse as the writer service would.
func (e *env) write(es []event.Enriched, pos []scenario.Position) {
	require.NoError(e.t, retry.Default.Do(e.ctx, func(ctx context.Context) error {
		return scenario.InsertDetections(ctx, e.conn, e.db, es, pos)
	}, nil))
}

type running struct {
	a      *app.App
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(group string) *running {
	cfg := app.DefaultConfig()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.Consumer.Brokers = e.brokers
	cfg.Consumer.Topic = e.topic
	cfg.Consumer.GroupID = group
	cfg.Consumer.BatchWait = 20 * time.Millisecond
	cfg.Consumer.HeartbeatInterval = 200 * time.Millisecond
	cfg.Consumer.SessionTimeout = 6 * time.Second
	cfg.Producer.Brokers = e.brokers
	cfg.Alerts.Topic = e.alerts
	cfg.Alerts.Partitions = 1
	cfg.ClickHouse.Addr = []string{testenv.ClickHouseAddr(e.t)}
	cfg.ClickHouse.Database = e.db
	cfg.Scheduler.Tick = 200 * time.Millisecond
	cfg.Scheduler.Backfill = 12 * time.Hour
	cfg.Scheduler.MaxStepsPerTick = 1000
	require.NoError(e.t, cfg.Validate())
	a, err := app.New(e.ctx, cfg, zaptest.NewLogger(e.t).Named(group), prometheus.NewRegistry())
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	e.t.Cleanup(func() { _ = r.stop() })
	return r
}

func (r *running) stop() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		return errors.New("correlator did not stop within 60 s")
	}
}

// committed reports whether group has committed every message of the topic.
func (e *env) committed(group string) bool {
	ends, err := kafka.PartitionOffsets(e.ctx, e.brokers, e.topic)
	require.NoError(e.t, err)
	client := &kafkago.Client{Addr: kafkago.TCP(e.brokers...)}
	req := &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{e.topic: {0, 1, 2}}}
	resp, err := client.OffsetFetch(e.ctx, req)
	if err != nil {
		return false
	}
	for _, p := range resp.Topics[e.topic] {
		if p.CommittedOffset != ends[p.Partition] && ends[p.Partition] > 0 {
			return false
		}
	}
	return true
}

// stored returns the latest version of every alert in ClickHouse.
func (e *env) stored() []alert.Alert {
	var out []alert.Alert
	err := retry.Default.Do(e.ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := e.conn.Query(ctx, "SELECT "+alert.Columns+" FROM `"+e.db+"`.alerts FINAL ORDER BY rule, alert_id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a alert.Alert
			if err := rows.Scan(&a.ID, &a.Rule, &a.Severity, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt,
				&a.WindowStart, &a.WindowEnd, &a.EvidenceIDs, &a.EvidenceCount, &a.Explanation, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	}, nil)
	require.NoError(e.t, err)
	return out
}

// published reads every message of the alerts topic: alert id -> versions seen.
func (e *env) published() map[string][]uint64 {
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.brokers, Topic: e.alerts, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ends, err := kafka.PartitionOffsets(e.ctx, e.brokers, e.alerts)
	require.NoError(e.t, err)
	out := map[string][]uint64{}
	for i := int64(0); i < ends[0]; i++ {
		m, err := r.ReadMessage(e.ctx)
		require.NoError(e.t, err)
		var a alert.Alert
		require.NoError(e.t, json.Unmarshal(m.Value, &a))
		out[a.ID] = append(out[a.ID], a.Version)
	}
	return out
}

// caughtUp reports whether every scheduled rule has evaluated its last step for events es.
func (e *env) caughtUp(es []event.Enriched) bool {
	var clock time.Time
	for _, ev := range es {
		if ev.ObservedAt.After(clock) {
			clock = ev.ObservedAt.Time
		}
	}
	rs, err := rules.LoadDefault()
	require.NoError(e.t, err)
	for _, r := range rs {
		if r.Mode != rules.Scheduled {
			continue
		}
		var wm time.Time
		q := "SELECT max(window_end) FROM `" + e.db + "`.correlator_watermarks WHERE rule = ?"
		if err := e.conn.QueryRow(e.ctx, q, r.ID).Scan(&wm); err != nil {
			return false
		}
		if wm.Before(clock.Add(-r.Lateness).Truncate(r.Every)) {
			return false
		}
	}
	return true
}

func findings(as []alert.Alert) []scenario.Expect {
	var out []scenario.Expect
	for _, a := range as {
		out = append(out, scenario.Expect{Rule: a.Rule, GroupKey: a.GroupKey, Facilities: a.Facilities})
	}
	return out
}

// scenarioEvents is a background of 30 days at 8 facilities with the streaming patterns
// and two scheduled ones (SIM_CHURN_SHARED_SIM, DRONE_THEN_NEW_DEVICE).
func scenarioEvents(t *testing.T, seed uint64) ([]event.Enriched, []scenario.Expect) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, seed, "e2e")
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-31 * 24 * time.Hour)
	es, _ := g.Background(t0, 30, 8, 8, 4)
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

// TestRestartMidPatternNeitherLosesNorDuplicates stops the correlator when each streaming
// pattern is half way, then starts another one in the same group: the second rebuilds
// state (from ClickHouse, and from Kafka for what ClickHouse does not hold yet) and raises
// each alert exactly once.
func TestRestartMidPatternNeitherLosesNorDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 3, "rs")
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-20 * 24 * time.Hour)
	all, _ := g.Background(t0, 18, 6, 6, 4)
	at := func(d, h int) time.Time { return t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour) }
	// The correlator stops at cut (event time): every pattern has events on both sides.
	cut := at(16, 12).Add(15 * time.Minute)
	var want []scenario.Expect
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
	var es, second []event.Enriched
	for _, ev := range all {
		if ev.ObservedAt.Before(cut) {
			es = append(es, ev)
		} else {
			second = append(second, ev)
		}
	}
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
