package chref

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/retry"
)

// Syncer keeps the ClickHouse reference tables at the latest snapshot it was told about, in
// the background, so that a slow or absent ClickHouse never holds up enrichment. A failed
// load is retried with pkg/retry (capped exponential backoff with jitter, for as long as it
// takes); each attempt loads the latest snapshot, so a newer one supersedes one not yet
// loaded.
type Syncer struct {
	loader *Loader
	logger *zap.Logger
	latest atomic.Pointer[reference.Snapshot]
	wake   chan struct{}
	loaded atomic.Pointer[string]
	loads  *prometheus.CounterVec
	policy retry.Policy
}

// NewSyncer returns a syncer over loader; its metrics are reference_clickhouse_loads_total.
func NewSyncer(loader *Loader, logger *zap.Logger, reg prometheus.Registerer) *Syncer {
	s := &Syncer{
		loader: loader,
		logger: logger.Named("chref"),
		wake:   make(chan struct{}, 1),
		policy: retry.Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2},
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		// Do returns once the load succeeded or ctx ended: loadLatest marks no error
		// permanent before that, so there is nothing to report here.
		_ = retry.Do(ctx, s.policy, s.loadLatest, func(err error, _ int, wait time.Duration) {
			s.loads.WithLabelValues("error").Inc()
			s.logger.Warn("load reference data into clickhouse, will retry", zap.Duration("retry_in", wait), zap.Error(err))
		})
	}
}

// loadLatest loads the latest notified snapshot unless ClickHouse already holds it.
func (s *Syncer) loadLatest(ctx context.Context) error {
	snap := s.latest.Load()
	if snap == nil || snap.Version() == s.LoadedVersion() {
		return nil
	}
	if _, err := s.loader.Load(ctx, snap); err != nil {
		return err
	}
	v := snap.Version()
	s.loaded.Store(&v)
	s.loads.WithLabelValues("ok").Inc()
	return nil
}
