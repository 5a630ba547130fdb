// Package e2e runs the whole pipeline — simulator → ingest → enricher → writer and
// correlator → ClickHouse — with every service as a real process on the local Kafka broker
// and ClickHouse server, and checks what a user relies on: every event sent is accounted
// for (rows + dead letters = sent), the planted scenarios raise their alerts, and no clear
// identifier appears anywhere downstream of ingest (Kafka topics, ClickHouse tables, logs).
package e2e

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
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/testenv"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/app"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

func TestPipelineEndToEnd(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := t.TempDir()
	buildServices(t, root, dir)

	// Unique names: this run's topics, groups and database.
	name := testenv.Name(t, "e2e")
	topic := func(base string) string { return base + "." + name }
	raw, enriched, dlq, alerts := topic(event.TopicRaw), topic(event.TopicEnriched), topic(event.TopicDLQ), topic("alerts.v1")
	db := name
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("database %s kept for inspection", db)
			return
		}
		if conn, err := report.Open(context.Background(), chAddr, "default"); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
			conn.Close()
		}
	})

	toks, credPath, keyPath := writeSecrets(t, dir)

	vigiectl := filepath.Join(dir, "vigiectl")
	require.NoError(t, runCmd(t, vigiectl, "migrate", "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db, "-log.level=warn"))
	require.NoError(t, runCmd(t, vigiectl, "topics", "apply", "-kafka.brokers="+strings.Join(brokers, ","), "-topics.suffix=."+name, "-log.level=warn"))

	ingestAPI, ingestAdmin := freeAddr(t), freeAddr(t)
	kb := strings.Join(brokers, ",")
	procs := []*proc{
		start(t, dir, "ingest", filepath.Join(dir, "ingest"), ingestAdmin,
			"VIGIE_INGEST_LISTEN="+ingestAPI, "VIGIE_INGEST_ADMIN_LISTEN="+ingestAdmin, "VIGIE_INGEST_KAFKA_BROKERS="+kb,
			"VIGIE_INGEST_CREDENTIALS_FILE="+credPath, "VIGIE_INGEST_PSEUDONYM_KEY_FILE="+keyPath,
			"VIGIE_INGEST_TOPICS_RAW="+raw, "VIGIE_INGEST_TOPICS_DLQ="+dlq, "VIGIE_INGEST_RATE_EVENTS_PER_SECOND=50000", "VIGIE_INGEST_RATE_BURST=100000"),
	}
	enricherAdmin := freeAddr(t)
	procs = append(procs, start(t, dir, "enricher", filepath.Join(dir, "enricher"), enricherAdmin,
		"VIGIE_ENRICHER_ADMIN_LISTEN="+enricherAdmin, "VIGIE_ENRICHER_KAFKA_BROKERS="+kb, "VIGIE_ENRICHER_CONSUMER_GROUP_ID="+name+"-enricher",
		"VIGIE_ENRICHER_TOPICS_RAW="+raw, "VIGIE_ENRICHER_TOPICS_ENRICHED="+enriched, "VIGIE_ENRICHER_TOPICS_DLQ="+dlq,
		"VIGIE_ENRICHER_CLICKHOUSE_ADDRS="+chAddr, "VIGIE_ENRICHER_CLICKHOUSE_DATABASE="+db))
	writerAdmin := freeAddr(t)
	procs = append(procs, start(t, dir, "writer", filepath.Join(dir, "writer"), writerAdmin,
		"VIGIE_WRITER_ADMIN_LISTEN="+writerAdmin, "VIGIE_WRITER_KAFKA_BROKERS="+kb, "VIGIE_WRITER_CONSUMER_GROUP_ID="+name+"-writer",
		"VIGIE_WRITER_TOPICS_ENRICHED="+enriched, "VIGIE_WRITER_TOPICS_DLQ="+dlq,
		"VIGIE_WRITER_CLICKHOUSE_ADDRS="+chAddr, "VIGIE_WRITER_CLICKHOUSE_DATABASE="+db, "VIGIE_WRITER_CONSUMER_BATCH_WAIT=200ms"))
	correlatorAdmin := freeAddr(t)
	procs = append(procs, start(t, dir, "correlator", filepath.Join(dir, "correlator"), correlatorAdmin,
		"VIGIE_CORRELATOR_ADMIN_LISTEN="+correlatorAdmin, "VIGIE_CORRELATOR_KAFKA_BROKERS="+kb,
		"VIGIE_CORRELATOR_TOPICS_ENRICHED="+enriched, "VIGIE_CORRELATOR_CONSUMER_GROUP_ID="+name+"-correlator", "VIGIE_CORRELATOR_TOPICS_ALERTS="+alerts,
		"VIGIE_CORRELATOR_CLICKHOUSE_ADDRS="+chAddr, "VIGIE_CORRELATOR_CLICKHOUSE_DATABASE="+db,
		"VIGIE_CORRELATOR_SCHEDULER_TICK=1s"))

	// The simulation: two weeks, three planted scenarios whose rules evaluate within the
	// test's time (the drone drop and the national burst are 10-minute scheduled steps: two
	// thousand of them for two replayed weeks; the generator tests check they are planted).
	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	w, err := world.New(ref)
	require.NoError(t, err)
	opt := traffic.DefaultOptions()
	opt.Seed, opt.Days, opt.Scale, opt.SupplierPhones, opt.InvalidRatio = 11, 14, 0.02, 400, 0.005
	opt.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -opt.Days)
	opt.Scenarios = []string{traffic.ScenarioPrisonBreak, traffic.ScenarioTransfer, traffic.ScenarioClonedIMEI}
	opt.RunID = "e2e-" + traffic.Letters(uint64(time.Now().UnixNano()))
	sc := send.DefaultConfig()
	sc.URL = "http://" + ingestAPI
	ids := newClearIDs()
	res, err := app.SimulateWith(ctx, w, opt, sc, toks, app.Pace{Wall: 20 * time.Second, Progress: 10 * time.Second, FlushEventTime: 10 * time.Minute}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), ids.add)
	require.NoError(t, err)
	st := res.Stats
	t.Logf("sent %d: accepted %d, rejected %d (planted invalid %d), duplicates %d, failed %d, in %s",
		st.Sent, st.Accepted, st.Rejected, res.Invalid, st.Duplicates, st.Failed, res.Duration)
	require.Zero(t, st.Failed)
	require.Zero(t, st.Duplicates)
	require.Equal(t, int64(res.Invalid), st.Rejected)
	require.Equal(t, st.Sent, st.Accepted+st.Rejected)

	// Every event accounted for: rows + dead letters = sent.
	conn, err := report.Open(ctx, chAddr, db)
	require.NoError(t, err)
	defer conn.Close()
	p := &report.Pipeline{Conn: conn, Database: db, Brokers: brokers, DLQTopic: dlq}
	counts, _, err := p.WaitDrained(ctx, opt.RunID, st.Sent, res.Truth.Start, res.Truth.End.Add(time.Hour), time.Second, 3*time.Minute, nil)
	require.NoError(t, err)
	require.Equal(t, st.Accepted, counts.Rows, "rows")
	require.Equal(t, report.DeadLetters{"ingest/schema_invalid": st.Rejected}, counts.DLQ)
	require.Equal(t, st.Sent, counts.Rows+counts.DLQ.Total())

	// The planted scenarios' alerts: those due in two weeks (the prison break's rules need
	// more history than that, and must stay quiet).
	checkPlantedAlerts(ctx, t, p, res.Truth)

	// No clear identifier downstream of ingest: Kafka topics, ClickHouse tables, logs.
	for _, tp := range []string{raw, enriched, dlq, alerts} {
		n := 0
		require.NoError(t, report.ReadTopic(ctx, brokers, tp, func(m kafkago.Message) {
			n++
			if leak := ids.find(string(m.Key) + " " + string(m.Value)); leak != "" {
				t.Errorf("topic %s offset %d/%d holds a clear %s", tp, m.Partition, m.Offset, leak)
			}
		}))
		t.Logf("topic %s: %d messages scanned", tp, n)
	}
	scanTables(ctx, t, p, ids, nil)
	// Stop every service at once (graceful, SIGTERM), then read the complete logs.
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); pr.stop(t) }()
	}
	wg.Wait()
	for _, pr := range procs {
		data, err := os.ReadFile(pr.logPath)
		require.NoError(t, err)
		if leak := ids.find(string(data)); leak != "" {
			t.Errorf("log of %s holds a clear %s", pr.name, leak)
		}
	}
}

// scanTables reads every row of every table of the database but those of skip and looks
// for identifiers.
func scanTables(ctx context.Context, t *testing.T, p *report.Pipeline, ids *clearIDs, skip map[string]bool) {
	t.Helper()
	rows, err := p.Conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine NOT LIKE '%View%'", p.Database)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		if !skip[n] {
			tables = append(tables, n)
		}
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Contains(t, tables, "detections")
	for _, tb := range tables {
		// Every column as text; aggregate states finalized (their raw bytes are hashes).
		cols, err := p.Conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY position", p.Database, tb)
		require.NoError(t, err, tb)
		var exprs []string
		for cols.Next() {
			var name, typ string
			require.NoError(t, cols.Scan(&name, &typ))
			if strings.HasPrefix(typ, "AggregateFunction") {
				exprs = append(exprs, "finalizeAggregation(`"+name+"`)")
			} else {
				exprs = append(exprs, "`"+name+"`")
			}
		}
		require.NoError(t, cols.Err())
		cols.Close()
		r, err := p.Conn.Query(ctx, fmt.Sprintf("SELECT toString(tuple(%s)) FROM `%s`.`%s`", strings.Join(exprs, ", "), p.Database, tb))
		require.NoError(t, err, tb)
		n := 0
		for r.Next() {
			var row string
			require.NoError(t, r.Scan(&row), tb)
			if leak := ids.find(row); leak != "" {
				t.Errorf("table %s holds a clear %s", tb, leak)
			}
			n++
		}
		require.NoError(t, r.Err(), tb)
		r.Close()
		t.Logf("table %s: %d rows scanned", tb, n)
	}
}

// writeSecrets writes into dir the sensors' credentials (every sensor of the reference) and
// the pseudonymisation key (ingest only), and returns the sensors' tokens and both paths.
func writeSecrets(t *testing.T, dir string) (toks creds.Tokens, credPath, keyPath string) {
	t.Helper()
	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	toks, credFile, err := creds.Generate(ref.Sensors())
	require.NoError(t, err)
	credPath, keyPath = filepath.Join(dir, "credentials.yaml"), filepath.Join(dir, "keys.yaml")
	require.NoError(t, creds.Write(credPath, filepath.Join(dir, "tokens.yaml"), toks, credFile))
	require.NoError(t, os.WriteFile(keyPath, []byte("active: e2e\ndefault_country_code: \"33\"\nblock_key: "+strings.Repeat("b7", 32)+"\nkeys:\n  e2e: "+strings.Repeat("5a", 32)+"\n"), 0o600))
	return toks, credPath, keyPath
}

// runCmd runs a command to completion, returning its output in the error.
func runCmd(t *testing.T, bin string, args ...string) error {
	t.Helper()
	out, err := execCommand(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, out)
	}
	return nil
}
