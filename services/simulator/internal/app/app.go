// Package app is the simulator's command line: `credentials` writes the sensors' tokens,
// `reference` writes a reference directory with a generated sensor set, `run` replays a
// simulated period (the planted scenarios on realistic background traffic) against the
// ingest API, compressing weeks into minutes, and `steady` sends at a fixed rate in real time
// for benchmarks.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// EnvPrefix prefixes the simulator's environment variables.
const EnvPrefix = "VIGIE_SIMULATOR"

const usage = `usage: simulator <command> [flags]

commands:
  credentials  write a token for every sensor: ingest's credentials file (hashes) and the
               simulator's tokens file
  reference    write a reference directory whose sensors.csv is generated (seed, sensors
               per facility), for the enricher and the simulator
  run          simulate a period (planted scenarios on background traffic) against ingest
  steady       send a steady rate of events in real time (benchmarks)

Run 'simulator <command> -h' for the command's flags.
`

// Run runs one command. stdout receives the command's result (the run summary); logs go to
// stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	switch args[0] {
	case "credentials":
		return runCredentials(args[1:])
	case "reference":
		return runReference(args[1:])
	case "run":
		return runSimulation(ctx, args[1:], stdout)
	case "steady":
		return runSteady(ctx, args[1:], stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadReference loads a reference directory, or the embedded default when dir is empty.
func loadReference(dir string) (*reference.Snapshot, error) {
	if dir == "" {
		return reference.Load(refdata.FS)
	}
	return reference.LoadDir(dir)
}

func newLogger(c telemetry.LogConfig) (*zap.Logger, error) {
	return telemetry.NewLogger(c, "simulator")
}

// ---- credentials ----

// CredentialsConfig configures `simulator credentials`.
type CredentialsConfig struct {
	// ReferenceDir holds the reference files; empty for the embedded default.
	ReferenceDir string `yaml:"reference_dir"`
	// CredentialsFile is ingest's credentials file to write (token hashes).
	CredentialsFile string `yaml:"credentials_file"`
	// TokensFile is the simulator's tokens file to write (the tokens, mode 0600).
	TokensFile string `yaml:"tokens_file"`
}

// Validate names the first bad field.
func (c *CredentialsConfig) Validate() error {
	if c.CredentialsFile == "" || c.TokensFile == "" {
		return errors.New("credentials_file, tokens_file: both must be set")
	}
	return nil
}

func runCredentials(args []string) error {
	cfg := &CredentialsConfig{}
	if err := config.Load(cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	var ids []string
	for _, s := range ref.Sensors() {
		ids = append(ids, s.ID)
	}
	toks, f, err := creds.Generate(ids)
	if err != nil {
		return err
	}
	return creds.Write(cfg.CredentialsFile, cfg.TokensFile, toks, f)
}

// ---- reference ----

// ReferenceConfig configures `simulator reference`.
type ReferenceConfig struct {
	// ReferenceDir is the source of facilities, TACs and operators; empty for the default.
	ReferenceDir string `yaml:"reference_dir"`
	// OutDir receives the four files.
	OutDir string `yaml:"out_dir"`
	// Seed and PerFacility are reference.GenerateOptions.
	Seed        uint64 `yaml:"seed"`
	PerFacility int    `yaml:"per_facility"`
}

// Validate names the first bad field.
func (c *ReferenceConfig) Validate() error {
	switch {
	case c.OutDir == "":
		return errors.New("out_dir: must be set")
	case c.PerFacility < 0 || c.PerFacility > 1000:
		return errors.New("per_facility: must be 0 (realistic sizes) to 1000")
	}
	return nil
}

func runReference(args []string) error {
	cfg := &ReferenceConfig{Seed: 1}
	if err := config.Load(cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", cfg.OutDir, err)
	}
	for _, name := range []string{reference.FacilitiesFile, reference.TACFile, reference.OperatorsFile} {
		var data []byte
		if cfg.ReferenceDir == "" {
			data, err = refdata.FS.ReadFile(name)
		} else {
			data, err = os.ReadFile(filepath.Join(cfg.ReferenceDir, name))
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(cfg.OutDir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	sensors := reference.GenerateSensors(ref.Facilities(), reference.GenerateOptions{Seed: cfg.Seed, PerFacility: cfg.PerFacility})
	f, err := os.Create(filepath.Join(cfg.OutDir, reference.SensorsFile))
	if err != nil {
		return fmt.Errorf("create sensors file: %w", err)
	}
	if err := reference.WriteSensorsCSV(f, sensors); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close sensors file: %w", err)
	}
	_, err = reference.LoadDir(cfg.OutDir)
	return err
}

// ---- run ----

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
	// Scale multiplies the background traffic (1: national volume, about 40,000 events a day).
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

// Summary is what a run prints at its end: counts and the planted findings in plain words,
// without clear identifiers.
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
}

// FindingInfo is a planted finding without clear identifiers.
type FindingInfo struct {
	Scenario       string    `json:"scenario"`
	Rule           string    `json:"rule"`
	Facilities     []string  `json:"facilities"`
	TACs           []string  `json:"tacs,omitempty"`
	SerialPrefixes []string  `json:"serial_prefixes,omitempty"`
	Devices        int       `json:"devices,omitempty"`
	At             time.Time `json:"at"`
	Summary        string    `json:"summary"`
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
	for _, f := range res.Truth.Findings {
		s.Findings = append(s.Findings, FindingInfo{Scenario: f.Scenario, Rule: f.Rule, Facilities: f.Facilities, TACs: f.TACs,
			SerialPrefixes: f.SerialPrefixes, Devices: f.Devices, At: f.At, Summary: f.Summary})
	}
	return s
}

// printPlanted prints the clear identifiers of the planted scenarios: for the operator's
// terminal only.
func printPlanted(w io.Writer, t traffic.Truth) {
	fmt.Fprintln(w, "planted identifiers (synthetic; printed here only, never written to a file):")
	for _, f := range t.Findings {
		if len(f.IMEIs) > 0 {
			fmt.Fprintf(w, "  %-18s %-22s IMEI %s\n", f.Scenario, f.Rule, strings.Join(f.IMEIs, " "))
		}
	}
}

// Result is the outcome of Simulate.
type Result struct {
	Stats    send.Stats
	Invalid  int
	Truth    traffic.Truth
	Duration time.Duration
}

// Pace says how a replay runs: Wall is the wall time of the whole period (0: as fast as
// ingest takes the events), Progress the interval of progress logs, FlushEventTime the
// event-time interval at which every sensor's pending events are sent (0: wall-time flushes
// only).
type Pace struct {
	Wall, Progress, FlushEventTime time.Duration
}

// Simulate generates the period of opt and sends it to ingest as pace says.
func Simulate(ctx context.Context, w *world.World, opt traffic.Options, sc send.Config, toks creds.Tokens, pace Pace, logger *zap.Logger) (Result, error) {
	return SimulateWith(ctx, w, opt, sc, toks, pace, logger, nil)
}

// SimulateWith is Simulate with a hook called for each event before it is sent (tests keep
// the clear identifiers they planted in memory with it).
func SimulateWith(ctx context.Context, w *world.World, opt traffic.Options, sc send.Config, toks creds.Tokens, pace Pace, logger *zap.Logger, hook func(*event.Detector)) (Result, error) {
	g, err := traffic.New(w, opt)
	if err != nil {
		return Result{}, err
	}
	logger = logger.Named("run")
	sender := send.New(sc, toks, logger)
	began := time.Now()
	span := g.End().Sub(g.Start())
	speed := 0.0
	if pace.Wall > 0 {
		speed = float64(span) / float64(pace.Wall)
	}
	nextFlush := g.Start().Add(pace.FlushEventTime)
	logger.Info("simulation starts", zap.String("run_id", opt.RunID), zap.Time("from", g.Start()), zap.Time("to", g.End()),
		zap.Int("days", g.Days()), zap.Float64("speed", speed), zap.Strings("scenarios", opt.Scenarios))
	nextLog := began.Add(pace.Progress)
	var runErr error
loop:
	for {
		day, evs, ok := g.Next()
		if !ok {
			break
		}
		for i := range evs {
			e := &evs[i]
			if speed > 0 {
				target := began.Add(time.Duration(float64(e.ObservedAt.Sub(g.Start())) / speed))
				if d := time.Until(target); d > 5*time.Millisecond {
					if err := sender.Flush(ctx); err != nil {
						runErr = err
						break loop
					}
					if err := sleep(ctx, d); err != nil {
						runErr = err
						break loop
					}
				}
			}
			if pace.FlushEventTime > 0 && !e.ObservedAt.Before(nextFlush) {
				for !e.ObservedAt.Before(nextFlush) {
					nextFlush = nextFlush.Add(pace.FlushEventTime)
				}
				if err := sender.Flush(ctx); err != nil {
					runErr = err
					break loop
				}
			}
			if hook != nil {
				hook(e)
			}
			if err := sender.Add(ctx, e); err != nil {
				runErr = err
				break loop
			}
			if now := time.Now(); now.After(nextLog) {
				nextLog = now.Add(pace.Progress)
				st := sender.Stats()
				logger.Info("progress", zap.Int("day", day+1), zap.Int("days", g.Days()), zap.Time("event_time", e.ObservedAt.Time),
					zap.Int64("sent", st.Sent), zap.Int64("accepted", st.Accepted), zap.Int64("rejected", st.Rejected),
					zap.Int64("failed", st.Failed), zap.Int64("retries", st.Retries),
					zap.Float64("events_per_second", float64(st.Sent)/time.Since(began).Seconds()))
			}
		}
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := sender.Close(closeCtx); err != nil && runErr == nil {
		runErr = err
	}
	res := Result{Stats: sender.Stats(), Invalid: g.Invalid(), Truth: g.Truth(), Duration: time.Since(began)}
	logger.Info("simulation done", zap.Int64("sent", res.Stats.Sent), zap.Int64("accepted", res.Stats.Accepted),
		zap.Int64("rejected", res.Stats.Rejected), zap.Int64("duplicates", res.Stats.Duplicates), zap.Int64("failed", res.Stats.Failed),
		zap.Duration("took", res.Duration))
	if runErr != nil {
		return res, fmt.Errorf("simulation stopped: %w", runErr)
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// helpOK turns -h into a clean exit.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
