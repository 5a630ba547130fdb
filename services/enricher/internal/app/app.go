package app

import (
	"context"
	"errors"
	"fmt"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/lifecycle"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/enricher/internal/chref"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
	"github.com/vigie/vigie/services/enricher/internal/pipeline"
	"github.com/vigie/vigie/services/enricher/internal/refwatch"
)

// App is a wired enricher, ready to Run.
type App struct {
	cfg       Config
	logger    *zap.Logger
	readiness *telemetry.Readiness
	admin     *telemetry.AdminServer
	store     *refwatch.Store
	tables    atomic.Pointer[enrich.Table]
	consumer  *kafka.Consumer
	enriched  *kafkago.Writer
	dlq       *kafkago.Writer
	chConn    driver.Conn
	syncer    *chref.Syncer
}

// New loads the reference data (a service does not start on broken reference data), creates
// the topics that are missing and builds every part. reg receives the vigie_enricher_*
// metrics.
func New(ctx context.Context, cfg Config, logger *zap.Logger, reg *prometheus.Registry) (*App, error) {
	a := &App{cfg: cfg, logger: logger, readiness: &telemetry.Readiness{}}
	sreg := prometheus.WrapRegistererWithPrefix("vigie_enricher_", reg)

	store, err := refwatch.New(cfg.Reference.Dir, schemaref.FS, logger, sreg)
	if err != nil {
		return nil, err
	}
	a.store = store
	snap := store.Current()
	st := snap.Stats()
	logger.Info("reference data loaded", zap.String("version", snap.Version()), zap.String("dir", cfg.Reference.Dir),
		zap.Duration("load", snap.LoadDuration()), zap.Int("facilities", st.Facilities), zap.Int("sensors", st.Sensors),
		zap.Int("tacs", st.TACs), zap.Int("operators", st.Operators))

	if cfg.ClickHouse.Addr != "" {
		conn, err := chref.Open(ctx, chref.Options{Addr: cfg.ClickHouse.Addr, Username: cfg.ClickHouse.Username,
			Password: cfg.ClickHouse.Password, Timeout: cfg.ClickHouse.Timeout})
		if err != nil {
			return nil, err
		}
		loader, err := chref.NewLoader(conn, cfg.ClickHouse.Database, logger)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		a.chConn = conn
		a.syncer = chref.NewSyncer(loader, logger, sreg)
	}
	// Compile each new version for enrichment and hand it to the ClickHouse loader. The
	// compiled table is swapped in right after the snapshot, by the reloading goroutine.
	store.OnChange(func(s *reference.Snapshot) {
		a.tables.Store(enrich.Compile(s))
		if a.syncer != nil {
			a.syncer.Notify(s)
		}
	})

	if err := kafka.EnsureTopics(ctx, cfg.Kafka.Brokers, cfg.topics()...); err != nil {
		a.closeClickHouse()
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	pc := cfg.producerConfig()
	if a.enriched, err = kafka.NewWriter(pc, cfg.Kafka.EnrichedTopic); err != nil {
		a.closeClickHouse()
		return nil, err
	}
	if a.dlq, err = kafka.NewWriter(pc, cfg.Kafka.DLQTopic); err != nil {
		a.closeClickHouse()
		return nil, err
	}
	brokers := cfg.Kafka.Brokers
	a.readiness.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, brokers) })
	if a.admin, err = telemetry.NewAdminServer(cfg.AdminAddr, reg, a.readiness, logger); err != nil {
		a.closeAll()
		return nil, err
	}
	// Profiles on the admin port (loopback by default), for measuring where the CPU goes.
	a.admin.Mux().HandleFunc("/debug/pprof/", pprof.Index)
	a.admin.Mux().HandleFunc("/debug/pprof/profile", pprof.Profile)
	// The consumer last: its reader starts joining the group as soon as it exists.
	p := pipeline.New(&a.tables, a.enriched, a.dlq, cfg.Kafka.ProduceRetry, logger, sreg)
	if a.consumer, err = kafka.NewConsumer(cfg.consumerConfig(), p.Handle, logger, sreg); err != nil {
		a.closeAll()
		return nil, err
	}
	return a, nil
}

// AdminAddr is the address of the admin server (useful with port 0).
func (a *App) AdminAddr() string { return a.admin.Addr() }

// Store is the reference store (tests trigger reloads through it).
func (a *App) Store() *refwatch.Store { return a.store }

// Run runs until ctx ends, SIGINT/SIGTERM, or a part fails, then shuts down in order: stop
// being ready, stop consuming (the batch in hand is produced and committed), stop watching
// the reference data and loading ClickHouse, close the producers, stop the admin server.
func (a *App) Run(ctx context.Context) error {
	defer a.closeAll()
	g := lifecycle.New(a.logger, a.cfg.ShutdownTimeout)
	stopping := make(chan struct{})
	g.Add("readiness", func(context.Context) error {
		a.readiness.MarkReady()
		<-stopping
		return nil
	}, func(context.Context) error {
		a.readiness.MarkNotReady()
		close(stopping)
		return nil
	})
	g.Add("consumer", a.consumer.Run, a.consumer.Stop)
	g.Add("reference-watch", func(ctx context.Context) error { return a.store.Run(ctx, a.cfg.Reference.Debounce) }, nil)
	if a.syncer != nil {
		g.Add("clickhouse-reference", a.syncer.Run, nil)
	}
	g.Add("admin", a.admin.Run, a.admin.Shutdown)
	a.logger.Info("enricher running", zap.Stringer("config", &a.cfg), zap.String("admin", a.AdminAddr()))
	return g.Run(ctx)
}

func (a *App) closeAll() {
	var errs []error
	if a.enriched != nil {
		errs = append(errs, a.enriched.Close())
	}
	if a.dlq != nil {
		errs = append(errs, a.dlq.Close())
	}
	a.enriched, a.dlq = nil, nil
	a.closeClickHouse()
	if err := errors.Join(errs...); err != nil {
		a.logger.Warn("close producers", zap.Error(err))
	}
}

func (a *App) closeClickHouse() {
	if a.chConn != nil {
		if err := a.chConn.Close(); err != nil {
			a.logger.Warn("close clickhouse", zap.Error(err))
		}
		a.chConn = nil
	}
}

// Ready reports whether the enricher is ready (tests).
func (a *App) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return a.readiness.Ready(ctx)
}
