// Command simbench measures the whole pipeline at steady rates: it sends detector events in
// real time through ingest, raising the rate step by step until the pipeline falls behind,
// and for each step reports the sustained rate, the detection-to-queryable and
// detection-to-alert latencies of probe events, and the CPU and memory of every process.
// `make bench` (deploy/local/bench.sh) runs it against services started for the purpose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// Config is the benchmark's configuration (env VIGIE_SIMBENCH_*).
type Config struct {
	TokensFile string      `yaml:"tokens_file"`
	Ingest     send.Config `yaml:"ingest"`
	ClickHouse string      `yaml:"clickhouse"`
	Database   string      `yaml:"database"`
	// Rates are the steps, in events per second; each lasts Step. (Strings: pkg/config
	// handles lists of strings only.)
	Rates []string      `yaml:"rates"`
	Step  time.Duration `yaml:"step"`
	// Drain is how long after a step the rows may take to catch up before the next step.
	Drain time.Duration `yaml:"drain"`
	// Procs lists name=pidfile of the processes whose CPU and memory are measured.
	Procs  []string `yaml:"procs"`
	Phones int      `yaml:"phones"`
	// Out receives the results as Markdown (also printed).
	Out string              `yaml:"out"`
	Log telemetry.LogConfig `yaml:"log"`
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.TokensFile == "" || c.ClickHouse == "" || c.Database == "":
		return errors.New("tokens_file, clickhouse, database: must be set")
	case len(c.Rates) == 0 || c.Step <= 0 || c.Drain < 0:
		return errors.New("rates, step, drain: at least one rate, a positive step")
	}
	for _, r := range c.Rates {
		if n, err := strconv.Atoi(r); err != nil || n <= 0 {
			return fmt.Errorf("rates: %q is not a positive number of events per second", r)
		}
	}
	return c.Ingest.Validate("ingest")
}

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "simbench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sc := send.DefaultConfig()
	sc.Workers, sc.FlushAfter = 16, 250*time.Millisecond
	cfg := &Config{Ingest: sc, Database: "vigie_bench", Rates: []string{"2000", "5000", "10000", "20000", "35000", "50000"},
		Step: 60 * time.Second, Drain: 30 * time.Second, Phones: 20000, ClickHouse: os.Getenv("CLICKHOUSE_ADDR"),
		Log: telemetry.LogConfig{Format: "console", Level: "warn"}}
	if err := config.Load(cfg, "VIGIE_SIMBENCH", os.Args[1:]); err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(cfg.Log, "simbench")
	if err != nil {
		return err
	}
	toks, err := creds.Load(cfg.TokensFile)
	if err != nil {
		return err
	}
	ref, err := reference.Load(refdata.FS)
	if err != nil {
		return err
	}
	w, err := world.New(ref)
	if err != nil {
		return err
	}
	conn, err := report.Open(ctx, cfg.ClickHouse, cfg.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	p := &report.Pipeline{Conn: conn, Database: cfg.Database}

	var results []stepResult
	began := time.Now()
	for i, rs := range cfg.Rates {
		rate, _ := strconv.Atoi(rs)
		runID := fmt.Sprintf("b%s", traffic.Letters(uint64(time.Now().UnixNano()/1e6)))
		st, err := traffic.NewSteady(w, uint64(i+1), runID, cfg.Phones)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "step %d: %d events/s for %s\n", i+1, rate, cfg.Step)
		r, err := measureStep(ctx, cfg, p, st, toks, rate, runID, logger)
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "  %s\n", r.line())
		if r.behind() {
			fmt.Fprintln(os.Stderr, "  the pipeline fell behind: stopping here")
			break
		}
	}
	md := markdown(cfg, results, time.Since(began))
	fmt.Print(md)
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return nil
}
