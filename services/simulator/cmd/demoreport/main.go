// Command demoreport waits until the pipeline has handled a simulator run and prints what
// Vigie found, in plain words: events sent, accepted and rejected, rows in ClickHouse,
// alerts per rule with the top findings, per rule the findings, the plants found and how
// late, the decoys kept quiet, the findings about no plant and the precision (scored with
// pkg/rulequality against the run's planted summary), each plant and decoy, and how to
// query further. `make demo` runs it after the simulator.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/rulequality"
	"github.com/vigie/vigie/services/simulator/internal/app"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// Config is the report's configuration (env VIGIE_DEMOREPORT_*).
type Config struct {
	SummaryFile string `yaml:"summary_file"`
	ClickHouse  string `yaml:"clickhouse"`
	// ClickHouseHTTP is the HTTP interface's address, for the "query further" part.
	ClickHouseHTTP string `yaml:"clickhouse_http"`
	Database       string `yaml:"database"`
	// KeyFile is the pseudonym key file (pkg/pseudonym): its block key turns the planted
	// serial blocks into the ids the pipeline stores, to match BATCH_RANGE's findings.
	KeyFile  string        `yaml:"key_file"`
	Brokers  []string      `yaml:"brokers"`
	DLQTopic string        `yaml:"dlq_topic"`
	Timeout  time.Duration `yaml:"timeout"`
	Settle   time.Duration `yaml:"settle"`
	// Admin lists name=address of the services' admin servers, for the "query further" part.
	Admin []string `yaml:"admin"`
	// Reset drops the database and exits: a new demo starts from empty tables (the services
	// must be stopped; their migrations recreate it).
	Reset bool `yaml:"reset"`
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Reset && (c.ClickHouse == "" || c.Database == ""):
		return errors.New("clickhouse, database: must be set")
	case c.Reset:
		return nil
	case c.SummaryFile == "":
		return errors.New("summary_file: must be set (the simulator's -summary_file)")
	case c.KeyFile == "":
		return errors.New("key_file: must be set (ingest's pseudonym key file: its block key names the planted serial blocks)")
	case c.ClickHouse == "" || c.Database == "":
		return errors.New("clickhouse, database: must be set")
	case len(c.Brokers) == 0 || c.DLQTopic == "":
		return errors.New("brokers, dlq_topic: must be set")
	case c.Timeout <= 0 || c.Settle <= 0:
		return errors.New("timeout, settle: must be positive")
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "demoreport:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := &Config{Database: "vigie", DLQTopic: "detections.dlq.v1", Timeout: 3 * time.Minute, Settle: 12 * time.Second,
		ClickHouse: os.Getenv("CLICKHOUSE_ADDR"), ClickHouseHTTP: os.Getenv("CLICKHOUSE_HTTP_ADDR"), Brokers: strings.Split(os.Getenv("KAFKA_BROKERS"), ",")}
	if cfg.Brokers[0] == "" {
		cfg.Brokers = nil
	}
	if err := config.Load(cfg, "VIGIE_DEMOREPORT", os.Args[1:]); err != nil {
		return err
	}
	if cfg.Reset {
		conn, err := report.Open(ctx, cfg.ClickHouse, "default")
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+cfg.Database+"`"); err != nil {
			return fmt.Errorf("drop database %s: %w", cfg.Database, err)
		}
		return nil
	}
	data, err := os.ReadFile(cfg.SummaryFile)
	if err != nil {
		return fmt.Errorf("read simulator summary: %w", err)
	}
	var sum app.Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		return fmt.Errorf("parse simulator summary %s: %w", cfg.SummaryFile, err)
	}
	truth, err := rulequality.ParseTruth(data)
	if err != nil {
		return fmt.Errorf("simulator summary %s: %w", cfg.SummaryFile, err)
	}
	keys, err := pseudonym.LoadFile(cfg.KeyFile)
	if err != nil {
		return err
	}
	truth = truth.KeyBlocks(keys.Active().BlockID)
	conn, err := report.Open(ctx, cfg.ClickHouse, cfg.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	p := &report.Pipeline{Conn: conn, Database: cfg.Database, Brokers: cfg.Brokers, DLQTopic: cfg.DLQTopic}
	answered := sum.Stats.Answered()
	began := time.Now()
	fmt.Fprintf(os.Stderr, "waiting for the pipeline to drain %s events and the correlator to settle…\n", report.Thousands(answered))
	lastLine := time.Time{}
	counts, alerts, err := p.WaitDrained(ctx, sum.RunID, answered, sum.Start, sum.End.Add(time.Hour), cfg.Settle, cfg.Timeout, func(c report.Counts, n int) {
		if time.Since(lastLine) > 5*time.Second {
			lastLine = time.Now()
			if n < 0 {
				fmt.Fprintf(os.Stderr, "  %s rows + %s dead letters of %s\n", report.Thousands(c.Rows), report.Thousands(c.DLQ.Total()), report.Thousands(answered))
			} else {
				fmt.Fprintf(os.Stderr, "  drained; %d alerts so far\n", n)
			}
		}
	})
	if err != nil {
		return err
	}
	return write(ctx, os.Stdout, p, cfg, sum, truth, counts, alerts, time.Since(began))
}

func write(ctx context.Context, w io.Writer, p *report.Pipeline, cfg *Config, sum app.Summary, truth rulequality.Truth, c report.Counts, alerts []report.Alert, drain time.Duration) error {
	st := sum.Stats
	fmt.Fprintf(w, "\n═══ Vigie demo: the 2025 \"Opération Prison Break\" case, replayed (run %s, seed %d) ═══\n\n", sum.RunID, sum.Seed)
	fmt.Fprintf(w, "Simulated %s → %s (%d days of detector traffic from %d facilities) in %s, drained %s later.\n\n",
		sum.Start.Format("2006-01-02"), sum.End.Format("2006-01-02"), int(sum.End.Sub(sum.Start).Hours()/24), sum.Facilities, sum.Duration, drain.Round(time.Second))

	fmt.Fprintln(w, "Events")
	report.Table(w, "  ", [][]string{
		{"sent by the simulator", report.Thousands(st.Sent), ""},
		{"accepted by ingest", report.Thousands(st.Accepted), "pseudonymised, on detections.raw.v1"},
		{"rejected by ingest", report.Thousands(st.Rejected), fmt.Sprintf("out of the contract (%d planted faulty readings)", sum.InvalidPlanted)},
		{"duplicates", report.Thousands(st.Duplicates), ""},
		{"not answered", report.Thousands(st.Failed), ""},
		{"rows in ClickHouse", report.Thousands(c.Rows), cfg.Database + ".detections"},
		{"dead letters", report.Thousands(c.DLQ.Total()), dlqWords(c.DLQ)},
	})
	if c.Rows+c.DLQ.Total() == st.Sent {
		fmt.Fprintf(w, "  every event is accounted for: %s rows + %s dead letters = %s sent\n\n", report.Thousands(c.Rows), report.Thousands(c.DLQ.Total()), report.Thousands(st.Sent))
	} else {
		fmt.Fprintf(w, "  NOT accounted for: %s rows + %s dead letters ≠ %s sent\n\n", report.Thousands(c.Rows), report.Thousands(c.DLQ.Total()), report.Thousands(st.Sent))
	}

	fmt.Fprintln(w, "Alerts per rule")
	if len(alerts) == 0 {
		fmt.Fprintln(w, "  none (is the correlator running? see .state/logs/correlator.log)")
	}
	var rows [][]string
	for _, rc := range report.RuleCounts(alerts) {
		rows = append(rows, []string{rc[0], rc[1]})
	}
	report.Table(w, "  ", rows)

	fmt.Fprintln(w, "\nTop findings")
	for _, tac := range report.TopTACs(alerts, 3) {
		r, err := p.Reach(ctx, sum.RunID, tac)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  • %s\n", r.Words())
	}
	for _, e := range report.Examples(alerts) {
		fmt.Fprintf(w, "  • %s\n", e)
	}

	// Scheduled rules step through event time; on a replay of weeks in minutes the
	// correlator may still be catching up when the data has drained.
	wms, err := p.Watermarks(ctx)
	if err != nil {
		wms = nil // a correlator that never ran has no table rows: nothing to say
	}
	writeQuality(w, truth, alerts, wms, cfg.SummaryFile)
	fmt.Fprintf(w, `
Query further
  ClickHouse speaks the native protocol at %[1]s, database %[2]s, to the read-only user
  analyst (password CLICKHOUSE_ANALYST_PASSWORD in .state/env). From Go (clickhouse-go/v2):

    conn, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{"%[1]s"},
        Auth: clickhouse.Auth{Database: "%[2]s", Username: "analyst", Password: os.Getenv("CLICKHOUSE_ANALYST_PASSWORD")}})
    rows, _ := conn.Query(ctx, `+"`"+`SELECT tac, uniqExact(facility_id) AS facilities, min(observed_at) AS since
                               FROM detections WHERE mini_phone GROUP BY tac ORDER BY facilities DESC`+"`"+`)

  More: SELECT rule, explanation FROM alerts FINAL ORDER BY created_at
        SELECT facility_id, sum(events) FROM detections_per_minute GROUP BY facility_id ORDER BY 2 DESC LIMIT 10
%[4]s  Metrics and health: %[3]s
  The services keep running (logs in .state/logs/): stop everything with `+"`make down`"+`.
`, cfg.ClickHouse, cfg.Database, adminWords(cfg.Admin), httpWords(cfg.ClickHouseHTTP, cfg.Database))
	return nil
}

func httpWords(addr, db string) string {
	if addr == "" {
		return ""
	}
	return fmt.Sprintf("  Over HTTP (curl, clickhouse-connect): curl -u \"analyst:$CLICKHOUSE_ANALYST_PASSWORD\" 'http://%s/?database=%s' --data-binary \\\n"+
		"        'SELECT rule, explanation FROM alerts FINAL ORDER BY created_at FORMAT PrettyCompact'\n", addr, db)
}

func dlqWords(d report.DeadLetters) string {
	var parts []string
	for k, v := range d {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ")
}

func adminWords(admin []string) string {
	if len(admin) == 0 {
		return "each service's /metrics, /healthz, /readyz on its admin port"
	}
	var parts []string
	for _, a := range admin {
		name, addr, _ := strings.Cut(a, "=")
		parts = append(parts, fmt.Sprintf("%s http://%s/metrics", name, addr))
	}
	return strings.Join(parts, ", ")
}

// writeQuality scores the alerts against what the simulator planted: the rule-quality table
// (pkg/rulequality, as vigiectl rules test and the rule-quality test print it), then each
// plant (found and how late, pending while its scheduled rule is still stepping, missed, or
// planted before its rule's history) and each decoy (quiet or not).
func writeQuality(w io.Writer, truth rulequality.Truth, alerts []report.Alert, wms map[string]time.Time, summaryFile string) {
	fmt.Fprintln(w, "\nRule quality: findings against what was planted")
	rep := rulequality.Score(traffic.Rules, truth, alerts)
	var table strings.Builder
	if err := rep.WriteTable(&table); err == nil {
		for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
			fmt.Fprintln(w, "  "+line)
		}
	}

	first := func(pl rulequality.Planted) (time.Time, bool) {
		var at time.Time
		found := false
		for _, a := range alerts {
			if rulequality.Matches(a, pl) && (!found || a.CreatedAt.Before(at)) {
				at, found = a.CreatedAt, true
			}
		}
		return at, found
	}
	fmt.Fprintln(w, "\nPlanted (each must be reported within its rule's promised delay)")
	var pending []string
	for _, pl := range truth.Plants {
		at, found := first(pl)
		promised := time.Duration(pl.Delay)
		mark := ""
		switch wm, ok := wms[pl.Rule]; {
		case pl.At.Before(truth.Start.Add(time.Duration(pl.History))):
			mark = "warming up, must stay quiet: planted before the " + days(time.Duration(pl.History)) + " of history " + pl.Rule + " needs"
			if found {
				mark = "REPORTED while warming up (planted before the " + days(time.Duration(pl.History)) + " of history it needs)"
			}
		case found:
			mark = fmt.Sprintf("found %s after it became true (promised %s)", late(at.Sub(pl.At)), late(promised))
			if at.Sub(pl.At) > promised {
				mark = "LATE: " + mark
			}
		case ok && wm.Before(pl.At.Add(promised)):
			mark = "pending: " + pl.Rule + " evaluated up to " + wm.Format("2006-01-02 15:04")
			pending = append(pending, pl.Rule)
		default:
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  • %s %s: %s\n    %s\n", pl.Scenario, pl.Rule, mark, pl.Summary)
	}
	if len(pending) > 0 {
		fmt.Fprintf(w, "  (pending: the correlator's scheduled rules are still stepping through the replayed weeks;\n"+
			"   run again: bin/demoreport -summary_file %s)\n", summaryFile)
	}
	fmt.Fprintln(w, "\nDecoys (near misses, just under each rule's threshold, that must stay quiet)")
	for _, d := range truth.Decoys {
		mark := "quiet"
		if _, found := first(d); found {
			mark = "NOT QUIET"
		}
		fmt.Fprintf(w, "  • %s %s: %s\n    %s\n", d.Scenario, d.Rule, mark, d.Summary)
	}
}

// late writes an event-time delay to the minute ("0" for none).
func late(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return d.Round(time.Minute).String()
}

func days(d time.Duration) string { return fmt.Sprintf("%d days", int(d.Hours()/24)) }
