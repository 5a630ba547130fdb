package app

// Simulate: the world's traffic sent to ingest at a pace, with the planted scenarios.

import (
	"context"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
	"go.uber.org/zap"
)

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
