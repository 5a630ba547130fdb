package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/rulequality"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/correlator/ruletool"
)

// errProblems is what rules check returns when a file has problems (listed on stdout).
var errProblems = errors.New("the rule files have problems")

func runRulesCheck(_ context.Context, s streams, args []string) error {
	files, err := parse(s, "rules check", flag.NewFlagSet("rules check", flag.ContinueOnError), nil, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file or directory")
	}
	problems := ruletool.Check(files)
	for _, p := range problems {
		fmt.Fprintln(s.stdout, p.String())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %d", errProblems, len(problems))
	}
	// Each rule's need for history: its facilities count once their feed is older.
	if err := ruletool.Needs(files, s.stdout); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "%d rule %s ok\n", len(files), plural(len(files), "path", "paths"))
	return nil
}

// RulesTestConfig is the configuration of `vigiectl rules test` on a database (without
// -events): the ClickHouse server and database it reads.
type RulesTestConfig struct {
	Log        telemetry.LogConfig `yaml:"log"`
	ClickHouse clickhouse.Config   `yaml:"clickhouse"`
}

// open connects to ClickHouse with c's log and clickhouse blocks and checks that the server
// answers; done closes the connection and flushes the log.
func (c *RulesTestConfig) open(ctx context.Context) (conn driver.Conn, log *zap.Logger, done func(), err error) {
	if log, err = newLogger(c.Log); err != nil {
		return nil, nil, nil, err
	}
	if conn, err = clickhouse.Open(ctx, c.ClickHouse, log); err != nil {
		_ = log.Sync()
		return nil, nil, nil, err
	}
	done = func() { conn.Close(); _ = log.Sync() }
	if err := clickhouse.Ping(conn)(ctx); err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("clickhouse %s: %w", strings.Join(c.ClickHouse.Addrs, ","), err)
	}
	return conn, log, done, nil
}

// Validate names the first bad key.
func (c *RulesTestConfig) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	return c.ClickHouse.Validate("clickhouse")
}

func runRulesTest(ctx context.Context, s streams, args []string) error {
	cfg := &RulesTestConfig{Log: defaultLog(), ClickHouse: clickhouse.DefaultConfig()}
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	eventsFile := fs.String("events", "", "NDJSON file of enriched events (detections.enriched.v1), one per line; - reads stdin. Without it, the rules run on the ClickHouse database")
	truthFile := fs.String("truth", "", "the simulator's planted summary (simulator run -summary_file): score the findings against its plants and decoys")
	keyFile := fs.String("key_file", "", "with -truth: ingest's pseudonym key file, whose block key names the planted serial blocks as the pipeline stores them (without it, the blocks are compared as the summary writes them)")
	fromFlag := fs.String("from", "", "on a database: the first event time evaluated (RFC 3339 or a date; default the first event of detections)")
	toFlag := fs.String("to", "", "on a database: the event clock, the last time evaluated (RFC 3339 or a date; default the last event of detections)")
	files, err := parseWithFiles(s, "rules test", fs, cfg, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file or directory")
	}
	from, err := parseTime("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := parseTime("to", *toFlag)
	if err != nil {
		return err
	}
	if *eventsFile != "" && (*fromFlag != "" || *toFlag != "") {
		return usagef("-from and -to bound a run on a database, not on -events")
	}
	var truth *rulequality.Truth
	if *truthFile != "" {
		t, err := rulequality.ReadTruth(*truthFile)
		if err != nil {
			return fmt.Errorf("truth: %w", err)
		}
		if *keyFile != "" {
			keys, err := pseudonym.LoadFile(*keyFile)
			if err != nil {
				return err
			}
			t = t.KeyBlocks(keys.Active().BlockID)
		}
		truth = &t
	}
	var res ruletool.Result
	if *eventsFile != "" {
		var events io.Reader = s.stdin
		if *eventsFile != "-" {
			f, err := os.Open(*eventsFile)
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			defer f.Close()
			events = f
		}
		if res, err = ruletool.Run(ctx, ruletool.Options{Paths: files, Events: events}); err != nil {
			return err
		}
	} else {
		conn, log, done, err := cfg.open(ctx)
		if err != nil {
			return err
		}
		defer done()
		db := ruletool.Database{Conn: conn, Name: cfg.ClickHouse.Database, From: from, To: to, Logger: log}
		if res, err = ruletool.RunDatabase(ctx, files, db); err != nil {
			return err
		}
	}
	if err := res.WriteFindings(s.stdout); err != nil {
		return err
	}
	return writeRuleTable(s.stdout, &res, truth)
}

// parseTime reads an RFC 3339 time or a date (UTC); empty is the zero time.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usagef("-%s: %q is not an RFC 3339 time or a date (2026-10-01)", name, v)
}

// writeRuleTable writes a table of the rules: mode, the history each needs (on a database,
// how many facilities' data covers it, or "warming up"), findings; with a truth, the plants
// each found (and how late against its promise), the decoys it kept quiet on, the findings
// about no plant, and the precision of all findings.
func writeRuleTable(w io.Writer, res *ruletool.Result, truth *rulequality.Truth) error {
	mode := rulequality.Column{Header: "mode", Value: func(id string) string {
		x := res.Rule(id)
		switch {
		case x.ID == "":
			return "not in the files"
		case !x.Evaluated:
			return x.Mode + ", not evaluated"
		}
		return x.Mode
	}}
	history := rulequality.Column{Header: "history needed: covered", Value: func(id string) string { return historyText(res.Rule(id)) }}
	fmt.Fprintln(w)
	if truth != nil {
		rep := rulequality.Score(res.IDs(), *truth, res.Findings)
		return rep.WriteTable(w, mode, history)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMODE\tHISTORY NEEDED: COVERED\tFINDINGS")
	for _, x := range res.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", x.ID, mode.Value(x.ID), history.Value(x.ID), x.Findings)
	}
	return tw.Flush()
}

// historyText says the history a rule needs and, on a database, how much of it the data
// covers at the clock: "28d: 160/176 facilities", "187d: warming up (from 2027-03-01)".
func historyText(x ruletool.Rule) string {
	if x.ID == "" {
		return ""
	}
	if x.Needs == 0 {
		return "none"
	}
	need := days(x.Needs)
	switch {
	case !x.Coverage:
		return need
	case x.Covered == 0 && x.FirstCovered.IsZero():
		return need + ": warming up"
	case x.Covered == 0:
		return need + ": warming up (until " + x.FirstCovered.Format(time.DateOnly) + ")"
	}
	return fmt.Sprintf("%s: %d/%d facilities", need, x.Covered, x.Facilities)
}

// days writes a duration in whole days when it is one ("28d"), else as Go does.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
