package e2e

// The fault tests' pipeline: the service binaries built once per package run, one pipeline
// per test (its own topics, consumer groups and database), and each service started, killed
// and restarted as a process of its own.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/report"
)

// built holds the binaries of one package run, shared by the fault tests (TestMain removes
// them).
var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// sharedBinaries builds the services once for every fault test and returns their directory.
func sharedBinaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			built.err = err
			return
		}
		if built.dir, built.err = os.MkdirTemp("", "vigie-e2e-bin-"); built.err != nil {
			return
		}
		built.err = buildAll(root, built.dir)
	})
	require.NoError(t, built.err)
	return built.dir
}

// buildAll is buildServices without a test to fail: its error is every test's.
func buildAll(root, dir string) error {
	for _, b := range []struct{ module, pkg string }{
		{"services/ingest", "./cmd/ingest"},
		{"services/enricher", "./cmd/enricher"},
		{"services/writer", "./cmd/writer"},
		{"services/vigiectl", "./cmd/vigiectl"},
		{"services/correlator", "./cmd/correlator"},
		{"services/simulator", "./cmd/simulator"}, // the rule-quality test's replays
	} {
		cmd := execCommand("go", "build", "-o", dir+"/", b.pkg)
		cmd.Dir = filepath.Join(root, b.module)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s %s: %w: %s", b.module, b.pkg, err, out)
		}
	}
	return nil
}

// pipeline is one test's ingest, enricher, writer (and correlator) on its own topics,
// consumer groups and database.
type pipeline struct {
	t                          *testing.T
	prefix, name, dir, bins    string
	brokers                    []string
	kafka                      kafka.Config // brokers, and their TLS and SASL when secure
	chAddr, db                 string
	ch                         clickhouse.Config // the server, and its TLS when secure
	raw, enriched, dlq, alerts string
	ingestAPI                  string
	credPath, keyPath          string
	tokens                     creds.Tokens
	ids                        *clearIDs
	admins                     map[string]string
	mu                         sync.Mutex
	procs                      map[string]*proc
	logs                       []string // every log of every process this pipeline started
	starts                     map[string]int
	correlator                 bool
	began                      time.Time
	extraEnv                   map[string][]string
}

// newPipeline makes the test's database and topics on brokers and the secrets the services
// read. Nothing runs yet: start starts the services.
func newPipeline(t *testing.T, brokers []string, prefix string) *pipeline {
	t.Helper()
	return newPipelineOn(t, brokers, testenv.ClickHouseAddr(t), prefix)
}

// newPipelineOn is newPipeline on the ClickHouse server at chAddr (a server of the test's
// own, which it may stop).
func newPipelineOn(t *testing.T, brokers []string, chAddr, prefix string) *pipeline {
	t.Helper()
	cc := clickhouse.DefaultConfig()
	cc.Addrs = []string{chAddr}
	return newPipelineWith(t, kafka.Config{Brokers: brokers}, cc, prefix)
}

// newPipelineWith is newPipelineOn with the Kafka configuration every service, vigiectl and
// the test's own reads use (TLS and SASL for a secure broker).
func newPipelineWith(t *testing.T, kc kafka.Config, cc clickhouse.Config, prefix string) *pipeline {
	t.Helper()
	brokers, chAddr := kc.Brokers, cc.Addrs[0]
	p := &pipeline{
		t: t, prefix: prefix, name: testenv.Name(t, prefix), dir: t.TempDir(), bins: sharedBinaries(t), brokers: brokers, kafka: kc,
		chAddr: chAddr, ch: cc, ids: newClearIDs(), admins: map[string]string{},
		procs: map[string]*proc{}, starts: map[string]int{}, extraEnv: map[string][]string{}, began: time.Now(),
	}
	p.db = p.name
	p.raw, p.enriched, p.dlq, p.alerts = event.TopicRaw+"."+p.name, event.TopicEnriched+"."+p.name, event.TopicDLQ+"."+p.name, "alerts.v1."+p.name
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("database %s kept for inspection", p.db)
			return
		}
		if conn, err := report.OpenWith(context.Background(), p.chConfig("default")); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+p.db+"`")
			conn.Close()
		}
	})

	p.tokens, p.credPath, p.keyPath = writeSecrets(t, p.dir)

	migrate := []string{"migrate", "-clickhouse.addrs=" + p.chAddr, "-clickhouse.database=" + p.db, "-log.level=warn"}
	for _, kv := range p.clickhouseSettings() {
		migrate = append(migrate, "-"+kv[0]+"="+kv[1])
	}
	require.NoError(t, runCmd(t, p.vigiectl(), migrate...))
	p.applyTopics()
	p.ingestAPI = freeAddr(t)
	for _, s := range []string{"ingest", "enricher", "writer", "correlator"} {
		p.admins[s] = freeAddr(t)
	}
	return p
}

func (p *pipeline) vigiectl() string { return filepath.Join(p.bins, "vigiectl") }

// applyTopics creates (or aligns) the pipeline's topics with vigiectl.
func (p *pipeline) applyTopics() {
	p.t.Helper()
	require.NoError(p.t, runCmd(p.t, p.vigiectl(), append([]string{"topics", "apply", "-topics.suffix=." + p.name, "-log.level=warn"}, p.kafkaFlags()...)...))
}

// chConfig is p's ClickHouse configuration on database db.
func (p *pipeline) chConfig(db string) clickhouse.Config {
	c := p.ch
	c.Database = db
	return c
}

// clickhouseSettings are the clickhouse block's credentials file and TLS settings of p, as
// (key, value) pairs.
func (p *pipeline) clickhouseSettings() [][2]string {
	var out [][2]string
	if p.ch.PasswordFile != "" {
		// A server of the test's own whose password is in a file (not the environment's).
		out = append(out, [2]string{"clickhouse.username", p.ch.Username}, [2]string{"clickhouse.password_file", p.ch.PasswordFile})
	}
	if p.ch.TLS.Enabled {
		out = append(out, [2]string{"clickhouse.tls.enabled", "true"}, [2]string{"clickhouse.tls.ca_file", p.ch.TLS.CAFile})
	}
	return out
}

// kafkaFlags are the kafka.* flags of p's Kafka configuration, for vigiectl.
func (p *pipeline) kafkaFlags() []string {
	var out []string
	for _, kv := range p.kafkaSettings() {
		out = append(out, "-"+kv[0]+"="+kv[1])
	}
	return out
}

// kafkaSettings are p's Kafka configuration as (key, value) pairs of the kafka block.
func (p *pipeline) kafkaSettings() [][2]string {
	k := p.kafka
	out := [][2]string{{"kafka.brokers", strings.Join(k.Brokers, ",")}}
	if k.TLS.Enabled {
		out = append(out, [2]string{"kafka.tls.enabled", "true"}, [2]string{"kafka.tls.ca_file", k.TLS.CAFile})
	}
	if k.SASL.Mechanism != "" {
		out = append(out, [2]string{"kafka.sasl.mechanism", k.SASL.Mechanism}, [2]string{"kafka.sasl.username", k.SASL.Username},
			[2]string{"kafka.sasl.password_file", k.SASL.PasswordFile})
	}
	return out
}

// env is the configuration of one service, as TestPipelineEndToEnd gives it.
func (p *pipeline) env(service string) []string {
	kb := strings.Join(p.brokers, ",")
	admin := p.admins[service]
	var env []string
	switch service {
	case "ingest":
		env = []string{"VIGIE_INGEST_LISTEN=" + p.ingestAPI, "VIGIE_INGEST_ADMIN_LISTEN=" + admin, "VIGIE_INGEST_KAFKA_BROKERS=" + kb,
			"VIGIE_INGEST_CREDENTIALS_FILE=" + p.credPath, "VIGIE_INGEST_PSEUDONYM_KEY_FILE=" + p.keyPath,
			"VIGIE_INGEST_TOPICS_RAW=" + p.raw, "VIGIE_INGEST_TOPICS_DLQ=" + p.dlq, "VIGIE_INGEST_RATE_EVENTS_PER_SECOND=50000", "VIGIE_INGEST_RATE_BURST=100000"}
	case "enricher":
		env = []string{"VIGIE_ENRICHER_ADMIN_LISTEN=" + admin, "VIGIE_ENRICHER_KAFKA_BROKERS=" + kb, "VIGIE_ENRICHER_CONSUMER_GROUP_ID=" + p.group("enricher"),
			"VIGIE_ENRICHER_TOPICS_RAW=" + p.raw, "VIGIE_ENRICHER_TOPICS_ENRICHED=" + p.enriched, "VIGIE_ENRICHER_TOPICS_DLQ=" + p.dlq,
			"VIGIE_ENRICHER_CLICKHOUSE_ADDRS=" + p.chAddr, "VIGIE_ENRICHER_CLICKHOUSE_DATABASE=" + p.db}
	case "writer":
		env = []string{"VIGIE_WRITER_ADMIN_LISTEN=" + admin, "VIGIE_WRITER_KAFKA_BROKERS=" + kb, "VIGIE_WRITER_CONSUMER_GROUP_ID=" + p.group("writer"),
			"VIGIE_WRITER_TOPICS_ENRICHED=" + p.enriched, "VIGIE_WRITER_TOPICS_DLQ=" + p.dlq,
			"VIGIE_WRITER_CLICKHOUSE_ADDRS=" + p.chAddr, "VIGIE_WRITER_CLICKHOUSE_DATABASE=" + p.db, "VIGIE_WRITER_CONSUMER_BATCH_WAIT=200ms"}
	case "correlator":
		env = []string{"VIGIE_CORRELATOR_ADMIN_LISTEN=" + admin, "VIGIE_CORRELATOR_KAFKA_BROKERS=" + kb,
			"VIGIE_CORRELATOR_TOPICS_ENRICHED=" + p.enriched, "VIGIE_CORRELATOR_CONSUMER_GROUP_ID=" + p.group("correlator"), "VIGIE_CORRELATOR_TOPICS_ALERTS=" + p.alerts,
			"VIGIE_CORRELATOR_CLICKHOUSE_ADDRS=" + p.chAddr, "VIGIE_CORRELATOR_CLICKHOUSE_DATABASE=" + p.db,
			"VIGIE_CORRELATOR_SCHEDULER_TICK=1s"}
	default:
		p.t.Fatalf("unknown service %s", service)
	}
	// The kafka block's security (TLS, SASL) as every service reads it: VIGIE_<SERVICE>_KAFKA_….
	settings := p.kafkaSettings()[1:]
	if service != "ingest" {
		settings = append(settings, p.clickhouseSettings()...)
	}
	for _, kv := range settings {
		env = append(env, "VIGIE_"+strings.ToUpper(service)+"_"+strings.ToUpper(strings.ReplaceAll(kv[0], ".", "_"))+"="+kv[1])
	}
	return append(env, p.extraEnv[service]...)
}

func (p *pipeline) group(service string) string { return p.name + "-" + service }

// startServices starts the services named (in order) and waits until each is ready.
func (p *pipeline) startServices(services ...string) {
	p.t.Helper()
	for _, s := range services {
		p.mu.Lock()
		p.starts[s]++
		n := p.starts[s]
		if s == "correlator" {
			p.correlator = true
		}
		p.mu.Unlock()
		// Each start logs to a file of its own (the leak check reads them all), named by
		// the test's prefix too: a failed test's logs are kept under their names.
		name := fmt.Sprintf("%s-%s-%d", p.prefix, s, n)
		pr := start(p.t, p.dir, name, filepath.Join(p.bins, s), p.admins[s], p.env(s)...)
		p.mu.Lock()
		p.procs[s] = pr
		p.logs = append(p.logs, pr.logPath)
		p.mu.Unlock()
	}
}

// start is startServices for the three services every test runs.
func (p *pipeline) start() { p.startServices("ingest", "enricher", "writer") }

// stopAll stops every running service gracefully, at once (SIGTERM).
func (p *pipeline) stopAll() {
	p.mu.Lock()
	procs := make([]*proc, 0, len(p.procs))
	for _, pr := range p.procs {
		procs = append(procs, pr)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); pr.stop(p.t) }()
	}
	wg.Wait()
}

// logf logs with the time since the pipeline was made (where a slow test spends its time).
func (p *pipeline) logf(format string, args ...any) {
	p.t.Helper()
	p.t.Logf("[%5.1fs] %s", time.Since(p.began).Seconds(), fmt.Sprintf(format, args...))
}
