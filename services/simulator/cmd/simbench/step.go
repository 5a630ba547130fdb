package main

// One step of the benchmark: a steady rate for a while, with probe events timed from
// detection to queryable and to alert.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigie/vigie/services/simulator/internal/app"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"go.uber.org/zap"
)

// probe is one cloned-IMEI pair sent at a known time.
type probe struct {
	ids        [2]string
	at         time.Time
	queryable  time.Duration
	alerted    time.Duration
	seen, hits bool
}

type stepResult struct {
	rate        int
	sent        int64
	accepted    int64
	failed      int64
	duration    time.Duration
	rowsAtEnd   int64 // rows of the step when sending stopped
	rowsDrained int64
	drainTime   time.Duration
	queryable   []time.Duration
	alerted     []time.Duration
	probes      int
	procs       []procUsage
}

func (r stepResult) sustained() float64 { return float64(r.accepted) / r.duration.Seconds() }

// behind: the sender could not keep the rate (ingest did not take it), or ClickHouse did not
// catch up within the drain time after sending stopped (the lag grew during the step).
func (r stepResult) behind() bool {
	return r.sustained() < 0.9*float64(r.rate) || r.rowsDrained < r.accepted
}

func (r stepResult) line() string {
	return fmt.Sprintf("sustained %.0f/s (sent %d, accepted %d, failed %d); rows behind at end of sending %d; queryable p50 %s p99 %s; alert p50 %s p99 %s (%d/%d probes alerted)",
		r.sustained(), r.sent, r.accepted, r.failed, r.accepted-r.rowsAtEnd, fmtD(pct(r.queryable, 0.5)), fmtD(pct(r.queryable, 0.99)),
		fmtD(pct(r.alerted, 0.5)), fmtD(pct(r.alerted, 0.99)), len(r.alerted), r.probes)
}

func measureStep(ctx context.Context, cfg *Config, p *report.Pipeline, st *traffic.Steady, toks creds.Tokens, rate int, runID string, logger *zap.Logger) (stepResult, error) {
	res := stepResult{rate: rate}
	before := sampleProcs(cfg.Procs)
	var mu sync.Mutex
	var probes []*probe
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		pollProbes(pollCtx, p, &mu, &probes, logger)
	}()
	sender := send.New(cfg.Ingest, toks, logger)
	start := time.Now()
	_, sendErr := app.SendSteady(ctx, st, sender, rate, cfg.Step, time.Hour, func(_ string, ids [2]string, at time.Time) {
		mu.Lock()
		probes = append(probes, &probe{ids: ids, at: at})
		mu.Unlock()
	}, logger)
	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err := sender.Close(closeCtx)
	cancel()
	res.duration = time.Since(start)
	after := sampleProcs(cfg.Procs)
	if err := errors.Join(sendErr, err); err != nil {
		stopPoll()
		<-pollDone
		return res, err
	}
	s := sender.Stats()
	res.sent, res.accepted, res.failed = s.Sent, s.Accepted, s.Failed
	res.procs = usage(before, after, res.duration)
	if res.rowsAtEnd, err = p.Rows(ctx, runID); err != nil {
		stopPoll()
		<-pollDone
		return res, err
	}
	// Let the pipeline drain (and the last probes land) before the next step.
	drainStart := time.Now()
	for res.rowsDrained = res.rowsAtEnd; time.Since(drainStart) < cfg.Drain; {
		if res.rowsDrained, err = p.Rows(ctx, runID); err != nil {
			break
		}
		if res.rowsDrained >= res.accepted && allSeen(&mu, probes) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.drainTime = time.Since(drainStart)
	stopPoll()
	<-pollDone
	mu.Lock()
	defer mu.Unlock()
	res.probes = len(probes)
	for _, pr := range probes {
		if pr.seen {
			res.queryable = append(res.queryable, pr.queryable)
		}
		if pr.hits {
			res.alerted = append(res.alerted, pr.alerted)
		}
	}
	return res, nil
}

func allSeen(mu *sync.Mutex, probes []*probe) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range probes {
		if !p.seen || !p.hits {
			return false
		}
	}
	return true
}

// pollProbes looks every 200 ms for the probes' rows and alerts, and records when each was
// first seen.
func pollProbes(ctx context.Context, p *report.Pipeline, mu *sync.Mutex, probes *[]*probe, logger *zap.Logger) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mu.Lock()
		var rowIDs, alertIDs []string
		byID := map[string]*probe{}
		for _, pr := range *probes {
			if !pr.seen {
				rowIDs = append(rowIDs, pr.ids[1])
			}
			if !pr.hits {
				alertIDs = append(alertIDs, pr.ids[0], pr.ids[1])
			}
			byID[pr.ids[0]], byID[pr.ids[1]] = pr, pr
		}
		mu.Unlock()
		now := time.Now()
		if len(rowIDs) > 0 {
			ids, err := query(ctx, p, "SELECT event_id FROM `"+p.Database+"`.detections WHERE event_id IN (?)", rowIDs)
			if err != nil && ctx.Err() == nil {
				logger.Warn("poll rows", zap.Error(err))
			}
			mu.Lock()
			for _, id := range ids {
				if pr := byID[id]; pr != nil && !pr.seen {
					pr.seen, pr.queryable = true, now.Sub(pr.at)
				}
			}
			mu.Unlock()
		}
		if len(alertIDs) > 0 {
			ids, err := query(ctx, p, "SELECT arrayJoin(evidence_event_ids) FROM `"+p.Database+"`.alerts WHERE rule = 'IMPOSSIBLE_TRAVEL' AND hasAny(evidence_event_ids, ?)", alertIDs)
			if err != nil && ctx.Err() == nil {
				logger.Warn("poll alerts", zap.Error(err))
			}
			mu.Lock()
			for _, id := range ids {
				if pr := byID[id]; pr != nil && !pr.hits {
					pr.hits, pr.alerted = true, now.Sub(pr.at)
				}
			}
			mu.Unlock()
		}
	}
}

func query(ctx context.Context, p *report.Pipeline, q string, arg []string) ([]string, error) {
	rows, err := p.Conn.Query(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ---- processes ----
