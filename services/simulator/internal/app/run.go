package app

// The run command's configuration and its summary of what was sent and planted.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// RunConfig configures `simulator run`.
type RunConfig struct {
	ReferenceDir string      `yaml:"reference_dir"`
	TokensFile   string      `yaml:"tokens_file"`
	Ingest       send.Config `yaml:"ingest"`
	Seed         uint64      `yaml:"seed"`
	// End is the last simulated day's end (RFC 3339 date or time); empty: today's midnight
	// UTC, so that the period ends now and stays inside the 90-day retention.
	End  string `yaml:"end"`
	Days int    `yaml:"days"`
	// Scale multiplies the background traffic (1: national volume, about 50,000 events a day).
	Scale              float64  `yaml:"scale"`
	Scenarios          []string `yaml:"scenarios"`
	SupplierPhones     int      `yaml:"supplier_phones"`
	SupplierFacilities int      `yaml:"supplier_facilities"`
	InvalidRatio       float64  `yaml:"invalid_ratio"`
	RunID              string   `yaml:"run_id"`
	// Wall is the wall-clock time the whole period should take (event time runs Days/Wall
	// faster); 0 sends as fast as ingest takes the events.
	Wall time.Duration `yaml:"wall"`
	// Progress is the interval of progress logs.
	Progress time.Duration `yaml:"progress"`
	// FlushEventTime sends every sensor's pending events each time event time advances this
	// much, so that a compressed replay reaches ingest in event-time order across sensors
	// (within this bound) rather than in whole seconds of wall time: rules with short
	// windows (one hour) need it.
	FlushEventTime time.Duration `yaml:"flush_event_time"`
	// PrintPlanted prints the planted clear identifiers to stdout (never to a file).
	PrintPlanted bool `yaml:"print_planted"`
	// SummaryFile, when set, receives the run's summary as JSON (no clear identifier).
	SummaryFile string              `yaml:"summary_file"`
	Log         telemetry.LogConfig `yaml:"log"`
}

// DefaultRunConfig is the 2025-case demo.
func DefaultRunConfig() RunConfig {
	o := traffic.DefaultOptions()
	return RunConfig{
		Ingest: send.DefaultConfig(), Seed: o.Seed, Days: o.Days, Scale: o.Scale, Scenarios: o.Scenarios,
		SupplierPhones: o.SupplierPhones, SupplierFacilities: o.SupplierFacilities, InvalidRatio: 0.0005,
		RunID: "", Progress: 10 * time.Second, FlushEventTime: 10 * time.Minute, Log: telemetry.DefaultLogConfig(),
	}
}

// Validate names the first bad field.
func (c *RunConfig) Validate() error {
	if c.TokensFile == "" {
		return errors.New("tokens_file: must be set (write it with `simulator credentials`)")
	}
	if _, err := c.end(); err != nil {
		return err
	}
	if c.Wall < 0 || c.Progress <= 0 || c.FlushEventTime < 0 {
		return errors.New("wall, progress, flush_event_time: progress must be positive, the others not negative")
	}
	if err := c.Ingest.Validate("ingest"); err != nil {
		return err
	}
	if _, err := c.options(); err != nil {
		return err
	}
	return c.Log.Validate()
}

func (c *RunConfig) end() (time.Time, error) {
	if c.End == "" {
		return time.Now().UTC().Truncate(24 * time.Hour), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, c.End); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("end: %q is not an RFC 3339 date or time", c.End)
}

func (c *RunConfig) options() (traffic.Options, error) {
	end, err := c.end()
	if err != nil {
		return traffic.Options{}, err
	}
	runID := c.RunID
	if runID == "" {
		runID = fmt.Sprintf("s%d-%s", c.Seed, traffic.Letters(uint64(time.Now().Unix())))
	}
	o := traffic.Options{
		Seed: c.Seed, Start: end.AddDate(0, 0, -c.Days), Days: c.Days, Scale: c.Scale, Scenarios: c.Scenarios,
		SupplierPhones: c.SupplierPhones, SupplierFacilities: c.SupplierFacilities, InvalidRatio: c.InvalidRatio, RunID: runID,
	}
	if len(o.Scenarios) == 1 && o.Scenarios[0] == "none" {
		o.Scenarios = nil
	}
	return o, o.Validate()
}

// Summary is what a run prints at its end: counts, the planted findings and the decoys (near
// misses that must stay quiet) in plain words, without clear identifiers.
type Summary struct {
	RunID           string        `json:"run_id"`
	Seed            uint64        `json:"seed"`
	Facilities      int           `json:"facilities"`
	Start           time.Time     `json:"start"`
	End             time.Time     `json:"end"`
	Stats           send.Stats    `json:"stats"`
	InvalidPlanted  int           `json:"invalid_planted"`
	Duration        string        `json:"duration"`
	EventsPerSecond float64       `json:"events_per_second"`
	Findings        []FindingInfo `json:"findings"`
	Decoys          []FindingInfo `json:"decoys,omitempty"`
}

// FindingInfo is a planted finding (or decoy) without clear identifiers: Since is the
// pattern's first event, At when the fact is true, Delay the longest its rule promises to
// take to report it, History the history the rule needs before At.
type FindingInfo struct {
	Scenario       string        `json:"scenario"`
	Rule           string        `json:"rule"`
	Facilities     []string      `json:"facilities"`
	TACs           []string      `json:"tacs,omitempty"`
	SerialPrefixes []string      `json:"serial_prefixes,omitempty"`
	Devices        int           `json:"devices,omitempty"`
	Since          time.Time     `json:"since"`
	At             time.Time     `json:"at"`
	Delay          time.Duration `json:"delay"`
	History        time.Duration `json:"history"`
	Summary        string        `json:"summary"`
}

func runSimulation(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := DefaultRunConfig()
	if err := config.Load(&cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	logger, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	toks, err := creds.Load(cfg.TokensFile)
	if err != nil {
		return err
	}
	opt, err := cfg.options()
	if err != nil {
		return err
	}
	w, err := world.New(ref)
	if err != nil {
		return err
	}
	res, err := Simulate(ctx, w, opt, cfg.Ingest, toks, Pace{Wall: cfg.Wall, Progress: cfg.Progress, FlushEventTime: cfg.FlushEventTime}, logger)
	if err != nil {
		return err
	}
	sum := summarize(res, opt)
	sum.Facilities = len(w.Facilities)
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if cfg.SummaryFile != "" {
		if err := os.WriteFile(cfg.SummaryFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
	}
	fmt.Fprintf(stdout, "%s\n", data)
	if cfg.PrintPlanted {
		printPlanted(stdout, res.Truth)
	}
	if res.Stats.Failed > 0 {
		return fmt.Errorf("%d of %d events were not answered by ingest (see the log)", res.Stats.Failed, res.Stats.Sent)
	}
	return nil
}

func summarize(res Result, opt traffic.Options) Summary {
	s := Summary{
		RunID: opt.RunID, Seed: opt.Seed, Start: res.Truth.Start, End: res.Truth.End, Stats: res.Stats,
		InvalidPlanted: res.Invalid, Duration: res.Duration.Round(time.Millisecond).String(),
		EventsPerSecond: float64(res.Stats.Sent) / res.Duration.Seconds(),
	}
	info := func(f traffic.Finding) FindingInfo {
		return FindingInfo{Scenario: f.Scenario, Rule: f.Rule, Facilities: f.Facilities, TACs: f.TACs, SerialPrefixes: f.SerialPrefixes,
			Devices: f.Devices, Since: f.Since, At: f.At, Delay: f.Delay, History: f.History, Summary: f.Summary}
	}
	for _, f := range res.Truth.Findings {
		s.Findings = append(s.Findings, info(f))
	}
	for _, f := range res.Truth.Decoys {
		s.Decoys = append(s.Decoys, info(f))
	}
	return s
}

// printPlanted prints the clear identifiers of the planted scenarios: for the operator's
// terminal only.
func printPlanted(w io.Writer, t traffic.Truth) {
	fmt.Fprintln(w, "planted identifiers (synthetic; printed here only, never written to a file):")
	for _, f := range t.Findings {
		if len(f.IMEIs) > 0 {
			fmt.Fprintf(w, "  %-19s %-22s IMEI %s\n", f.Scenario, f.Rule, strings.Join(f.IMEIs, " "))
		}
	}
	for _, f := range t.Decoys {
		if len(f.IMEIs) > 0 {
			fmt.Fprintf(w, "  %-19s %-22s IMEI %s (decoy)\n", f.Scenario, f.Rule, strings.Join(f.IMEIs, " "))
		}
	}
}
