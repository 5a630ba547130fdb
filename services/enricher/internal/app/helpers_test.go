package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// testConfig is a configuration with topics and group of this test only and the reference
// data written to a fresh directory; it creates the topics, with 4 partitions each.
func testConfig(t testing.TB, opt reftest.Options) (*Config, *reference.Snapshot) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Log.Format = "console"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.Kafka.Brokers = testenv.KafkaBrokers(t)
	cfg.Topics = Topics{Raw: testenv.Name(t, "raw"), Enriched: testenv.Name(t, "enriched"), DLQ: testenv.Name(t, "dlq")}
	cfg.Consumer.GroupID = testenv.Name(t, "enricher")
	cfg.Consumer.BatchSize = 500
	cfg.Reference.Dir = t.TempDir()
	cfg.Reference.Debounce = 100 * time.Millisecond
	require.NoError(t, reftest.WriteDir(cfg.Reference.Dir, opt))
	require.NoError(t, cfg.Validate())
	createTopics(t, cfg, 4)
	snap, err := reference.LoadDir(cfg.Reference.Dir)
	require.NoError(t, err)
	return cfg, snap
}

// createTopics creates the test's three topics, as `vigiectl topics apply` does for the
// real ones.
func createTopics(t testing.TB, cfg *Config, partitions int) {
	t.Helper()
	var specs []kafka.TopicSpec
	for _, name := range []string{cfg.Topics.Raw, cfg.Topics.Enriched, cfg.Topics.DLQ} {
		specs = append(specs, kafka.TopicSpec{Name: name, Partitions: partitions})
	}
	_, err := kafka.ApplyTopics(context.Background(), cfg.Kafka, specs, zap.NewNop())
	require.NoError(t, err)
}

// running is an enricher started by a test, in-process through the service skeleton.
type running struct {
	e      *enricher
	svc    *service.Service
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg *Config) *running {
	t.Helper()
	return startWithLogger(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
}

func startWithLogger(t *testing.T, cfg *Config, logger *zap.Logger) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{reg: reg, cancel: cancel, done: make(chan error, 1)}
	built := make(chan *enricher, 1)
	started := make(chan *service.Service, 1)
	buildTest := func(ctx context.Context, s *service.Service, cfg *Config) error {
		e, err := build(ctx, s, cfg)
		if err == nil {
			built <- e
		}
		return err
	}
	go func() {
		r.done <- service.Run(ctx, Name, cfg, buildTest, service.WithLogger(logger), service.WithRegistry(reg),
			service.WithStarted(func(s *service.Service) { started <- s }))
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case r.svc = <-started:
		r.e = <-built
	case err := <-r.done:
		r.cancel = nil
		t.Fatalf("enricher did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("enricher did not start within 30s")
	}
	// Ready once the consumer joined its group (the /readyz of the admin port).
	require.Eventually(t, func() bool { return readyz(r.svc.AdminAddr()) == http.StatusOK }, 30*time.Second, 20*time.Millisecond)
	return r
}

// readyz is the status of the admin port's /readyz (0 when it does not answer).
func readyz(addr string) int {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// stop shuts the enricher down gracefully and waits for it.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("enricher did not stop within 30s")
	}
}

// metric returns the value of a counter or gauge of reg with the given labels.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, labels) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := labels[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

// produceRaw writes events to the raw topic keyed by sensor id, as ingest does.
func produceRaw(t testing.TB, cfg *Config, events []event.Raw) {
	t.Helper()
	msgs, err := reftest.Marshal(events)
	require.NoError(t, err)
	produceMessages(t, cfg, events, msgs)
}

func produceMessages(t testing.TB, cfg *Config, events []event.Raw, values [][]byte) {
	t.Helper()
	pc := kafka.DefaultProducerConfig()
	pc.BatchSize = 2000
	p, err := kafka.NewProducer(cfg.Kafka, pc, cfg.Topics.Raw)
	require.NoError(t, err)
	defer p.Close()
	out := make([]kafka.Message, len(values))
	for i := range values {
		out[i] = kafka.Message{Key: []byte(events[i].SensorID), Value: values[i]}
	}
	for len(out) > 0 {
		n := min(len(out), 2000)
		require.NoError(t, p.Write(context.Background(), out[:n]...))
		out = out[n:]
	}
}

// collected is what a test read from an output topic.
type collected struct {
	msgs []kafkago.Message
}

// readTopic reads topic from the beginning (a fresh group) until want messages arrived or
// timeout passed; then it keeps reading for linger to catch extra messages.
func readTopic(t testing.TB, cfg *Config, topic string, want int, timeout, linger time.Duration) collected {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     cfg.Kafka.Brokers,
		Topic:       topic,
		GroupID:     testenv.Name(t, "reader"),
		StartOffset: kafkago.FirstOffset,
		MinBytes:    1,
		MaxBytes:    8 << 20,
		MaxWait:     100 * time.Millisecond,
	})
	defer r.Close()
	var c collected
	deadline := time.Now().Add(timeout)
	for {
		limit := deadline
		if len(c.msgs) >= want {
			limit = time.Now().Add(linger)
			deadline = limit
		}
		ctx, cancel := context.WithDeadline(context.Background(), limit)
		m, err := r.FetchMessage(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return c
			}
			require.NoError(t, err)
		}
		c.msgs = append(c.msgs, m)
	}
}

// enrichedByID decodes enriched messages by event id, counting duplicates.
func enrichedByID(t testing.TB, c collected) (map[string]event.Enriched, int) {
	t.Helper()
	out := map[string]event.Enriched{}
	dups := 0
	for _, m := range c.msgs {
		var e event.Enriched
		require.NoError(t, json.Unmarshal(m.Value, &e), string(m.Value))
		require.Equal(t, e.Enrichment.DeviceKey, string(m.Key))
		if _, seen := out[e.EventID]; seen {
			dups++
		}
		out[e.EventID] = e
	}
	return out, dups
}

// rewriteFile replaces a reference file the way deploy tools do: write beside, rename over.
func rewriteFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	require.NoError(t, os.WriteFile(tmp, data, 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
}

// versionWith is the reference version of dir with one file replaced by data.
func versionWith(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range reference.Files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		fsys[f] = &fstest.MapFile{Data: b}
	}
	fsys[name] = &fstest.MapFile{Data: data}
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	return snap.Version()
}

// clickhouseConfig reaches the local ClickHouse server's default database.
func clickhouseConfig(t testing.TB) clickhouse.Config {
	t.Helper()
	c := clickhouse.DefaultConfig()
	c.Addrs = []string{testenv.ClickHouseAddr(t)}
	c.Database = "default"
	return c
}

// migratedDatabase creates a database of this test with Vigie's migrations applied.
func migratedDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, clickhouseConfig(t), zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	db := testenv.Name(t, "enricher")
	migrations, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	for attempt := 1; ; attempt++ { // the local server sometimes drops a connection under load
		_, err = chmigrate.Apply(ctx, conn, db, migrations, zap.NewNop())
		if err == nil || attempt == 5 {
			break
		}
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`") })
	return db
}
