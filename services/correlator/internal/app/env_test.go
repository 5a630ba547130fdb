package app_test

import (
	"context"
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/app"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// env is one test's infrastructure: an enriched topic, an alerts topic, a database.
type env struct {
	t      testing.TB
	kafka  kafka.Config
	topic  string
	alerts string
	conn   driver.Conn
	db     string
	ctx    context.Context
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	e := &env{t: t, kafka: kafka.DefaultConfig()}
	e.kafka.Brokers = testenv.KafkaBrokers(t)
	e.topic = testenv.Name(t, "enriched")
	e.alerts = testenv.Name(t, "alerts")
	var cancel context.CancelFunc
	e.ctx, cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	// The correlator creates no topic: the test does, as vigiectl topics apply would.
	_, err := kafka.ApplyTopics(e.ctx, e.kafka, []kafka.TopicSpec{
		{Name: e.topic, Partitions: partitions},
		{Name: e.alerts, Partitions: 1},
	}, zap.NewNop())
	require.NoError(t, err)
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
	ends, err := kafka.PartitionOffsets(e.ctx, e.kafka, e.topic)
	require.NoError(e.t, err)
	byPart := map[int][]kafkago.Message{}
	pos := make([]scenario.Position, len(es))
	for i := range es {
		p := partitionOf(es[i].Enrichment.DeviceKey)
		v, err := event.EncodeEnriched(nil, &es[i])
		require.NoError(e.t, err)
		pos[i] = scenario.Position{Topic: e.topic, Partition: p, Offset: ends[p] + int64(len(byPart[p]))}
		byPart[p] = append(byPart[p], kafkago.Message{Key: []byte(es[i].Enrichment.DeviceKey), Value: v})
	}
	for p, msgs := range byPart {
		conn, err := kafkago.DialLeader(e.ctx, "tcp", e.kafka.Brokers[0], e.topic, p)
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
	require.NoError(e.t, retry.Do(e.ctx, retry.Default(), func(ctx context.Context) error {
		return scenario.InsertDetections(ctx, e.conn, e.db, es, pos)
	}, nil))
}

type running struct {
	svc    *service.Service
	cancel context.CancelFunc
	done   chan error
}

// config is a correlator's configuration for the test's topics and database.
func (e *env) config(group string) *app.Config {
	cfg := app.DefaultConfig()
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Kafka = e.kafka
	cfg.Consumer.GroupID = group
	cfg.Consumer.BatchWait = 20 * time.Millisecond
	cfg.Consumer.HeartbeatInterval = 200 * time.Millisecond
	cfg.Consumer.SessionTimeout = 6 * time.Second
	cfg.Topics.Enriched = e.topic
	cfg.Topics.Alerts = e.alerts
	cfg.ClickHouse = chtest.Config(e.t, e.db)
	cfg.Scheduler.Tick = 200 * time.Millisecond
	cfg.Scheduler.Backfill = 12 * time.Hour
	cfg.Scheduler.MaxStepsPerTick = 1000
	require.NoError(e.t, cfg.Validate())
	return cfg
}

// start runs a correlator in-process, as service.Main would, until it is ready.
func (e *env) start(group string) *running { return e.run(e.config(group), group) }

func (e *env) run(cfg *app.Config, name string) *running {
	ctx, cancel := context.WithCancel(e.ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	started := make(chan *service.Service, 1)
	go func() {
		r.done <- service.Run(ctx, "correlator", cfg, app.Build,
			service.WithLogger(zaptest.NewLogger(e.t).Named(name)), service.WithRegistry(prometheus.NewRegistry()),
			service.WithStarted(func(s *service.Service) { started <- s }))
	}()
	e.t.Cleanup(func() { _ = r.stop() })
	select {
	case r.svc = <-started:
	case err := <-r.done:
		r.cancel = nil
		require.NoError(e.t, err, "correlator ended before it started")
		require.FailNow(e.t, "correlator ended before it started")
	}
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
	ends, err := kafka.PartitionOffsets(e.ctx, e.kafka, e.topic)
	require.NoError(e.t, err)
	client := &kafkago.Client{Addr: kafkago.TCP(e.kafka.Brokers...)}
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
	err := retry.Do(e.ctx, retry.Default(), func(ctx context.Context) error {
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
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kafka.Brokers, Topic: e.alerts, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ends, err := kafka.PartitionOffsets(e.ctx, e.kafka, e.alerts)
	require.NoError(e.t, err)
	out := map[string][]uint64{}
	for i := int64(0); i < ends[0]; i++ {
		m, err := r.ReadMessage(e.ctx)
		require.NoError(e.t, err)
		var a alert.Alert
		require.NoError(e.t, event.DecodeAlert(m.Value, &a))
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
