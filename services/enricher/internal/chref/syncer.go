package chref

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
)

// Syncer keeps the ClickHouse reference tables at the latest snapshot it was told about, in
// the background, so that a slow or absent ClickHouse never holds up enrichment. A failed
// load is retried with exponential backoff and jitter; a newer snapshot supersedes one not
// yet loaded.
type Syncer struct {
	loader   *Loader
	logger   *zap.Logger
	latest   atomic.Pointer[reference.Snapshot]
	wake     chan struct{}
	loaded   atomic.Pointer[string]
	loads    *prometheus.CounterVec
	minRetry time.Duration
	maxRetry time.Duration
}

// NewSyncer returns a syncer over loader; its metrics are reference_clickhouse_loads_total.
func NewSyncer(loader *Loader, logger *zap.Logger, reg prometheus.Registerer) *Syncer {
	s := &Syncer{
		loader:   loader,
		logger:   logger.Named("chref"),
		wake:     make(chan struct{}, 1),
		minRetry: time.Second,
		maxRetry: time.Minute,
		loads: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "reference_clickhouse_loads_total",
			Help: "Loads of the reference data into ClickHouse by result (ok, error).",
		}, []string{"result"}),
	}
	s.loads.WithLabelValues("ok")
	s.loads.WithLabelValues("error")
	return s
}

// Notify asks for snap to be loaded; it never blocks.
func (s *Syncer) Notify(snap *reference.Snapshot) {
	s.latest.Store(snap)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// LoadedVersion is the reference version last loaded into ClickHouse ("" before the first).
func (s *Syncer) LoadedVersion() string {
	if v := s.loaded.Load(); v != nil {
		return *v
	}
	return ""
}

// Run loads snapshots as they are notified until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	retry := s.minRetry
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
		snap := s.latest.Load()
		if snap == nil || snap.Version() == s.LoadedVersion() {
			continue
		}
		if _, err := s.loader.Load(ctx, snap); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.loads.WithLabelValues("error").Inc()
			wait := retry + rand.N(retry/2+1) // jitter: replicas do not retry in step
			s.logger.Warn("load reference data into clickhouse, will retry", zap.Duration("retry_in", wait), zap.Error(err))
			timer.Reset(wait)
			retry = min(2*retry, s.maxRetry)
			continue
		}
		retry = s.minRetry
		v := snap.Version()
		s.loaded.Store(&v)
		s.loads.WithLabelValues("ok").Inc()
	}
}
