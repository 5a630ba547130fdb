package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// SteadyConfig configures `simulator steady`.
type SteadyConfig struct {
	ReferenceDir string      `yaml:"reference_dir"`
	TokensFile   string      `yaml:"tokens_file"`
	Ingest       send.Config `yaml:"ingest"`
	Seed         uint64      `yaml:"seed"`
	RunID        string      `yaml:"run_id"`
	// Rate is the events per second to send; Duration how long.
	Rate     int           `yaml:"rate"`
	Duration time.Duration `yaml:"duration"`
	// Phones is the standing population.
	Phones   int                 `yaml:"phones"`
	Progress time.Duration       `yaml:"progress"`
	Log      telemetry.LogConfig `yaml:"log"`
}

// Validate names the first bad field.
func (c *SteadyConfig) Validate() error {
	switch {
	case c.TokensFile == "":
		return errors.New("tokens_file: must be set")
	case c.Rate <= 0 || c.Duration <= 0 || c.Phones <= 0 || c.Progress <= 0:
		return errors.New("rate, duration, phones, progress: must be positive")
	}
	if err := c.Ingest.Validate("ingest"); err != nil {
		return err
	}
	return c.Log.Validate()
}

func runSteady(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := &SteadyConfig{Ingest: send.DefaultConfig(), Seed: 1, Rate: 1000, Duration: time.Minute, Phones: 20000, Progress: 10 * time.Second, Log: telemetry.DefaultLogConfig()}
	if err := config.Load(cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	if cfg.RunID == "" {
		cfg.RunID = fmt.Sprintf("st%d-%s", cfg.Seed, traffic.Letters(uint64(time.Now().Unix())))
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
	w, err := world.New(ref)
	if err != nil {
		return err
	}
	st, err := traffic.NewSteady(w, cfg.Seed, cfg.RunID, cfg.Phones)
	if err != nil {
		return err
	}
	sender := send.New(cfg.Ingest, toks, logger)
	res, runErr := SendSteady(ctx, st, sender, cfg.Rate, cfg.Duration, cfg.Progress, nil, logger)
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := sender.Close(closeCtx); err != nil && runErr == nil {
		runErr = err
	}
	res.Stats = sender.Stats()
	data, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", data)
	return runErr
}

// SteadyResult is what SendSteady did.
type SteadyResult struct {
	Stats    send.Stats `json:"stats"`
	Duration string     `json:"duration"`
	// Behind is how far the sender fell behind the schedule at the end: ingest took the
	// events slower than the rate.
	Behind string `json:"behind"`
}

// SendSteady sends rate events per second in ticks of 10 ms for duration, each observed
// when it is made. Every second, when probe is set, it also sends a Steady probe and calls
// probe with its IMEI, event ids and time (the benchmark measures their latency).
func SendSteady(ctx context.Context, st *traffic.Steady, sender *send.Sender, rate int, duration, progress time.Duration, probe func(imei string, ids [2]string, at time.Time), logger *zap.Logger) (SteadyResult, error) {
	const tick = 10 * time.Millisecond
	began := time.Now()
	emitted := 0
	var err error
	add := func(e *event.Detector) {
		if err == nil {
			err = sender.Add(ctx, e)
		}
	}
	nextProbe, nextLog := began, began.Add(progress)
	for now := time.Now(); now.Sub(began) < duration && err == nil; now = time.Now() {
		due := int(float64(rate) * now.Sub(began).Seconds())
		if due > emitted {
			st.Events(now, due-emitted, add)
			emitted = due
		}
		if probe != nil && !now.Before(nextProbe) {
			imei, ids := st.Probe(now, add)
			_ = sender.Flush(ctx)
			probe(imei, ids, now)
			nextProbe = nextProbe.Add(time.Second)
		}
		if now.After(nextLog) {
			nextLog = now.Add(progress)
			s := sender.Stats()
			logger.Info("progress", zap.Int64("sent", s.Sent), zap.Int64("accepted", s.Accepted), zap.Int64("failed", s.Failed),
				zap.Float64("events_per_second", float64(s.Accepted)/now.Sub(began).Seconds()))
		}
		if d := time.Until(now.Add(tick)); d > 0 {
			if e := sleep(ctx, d); e != nil {
				err = e
			}
		}
	}
	behind := time.Duration(0)
	if due := int(float64(rate) * time.Since(began).Seconds()); due > emitted {
		behind = time.Duration(float64(due-emitted) / float64(rate) * float64(time.Second))
	}
	return SteadyResult{Duration: time.Since(began).Round(time.Millisecond).String(), Behind: behind.String()}, err
}
