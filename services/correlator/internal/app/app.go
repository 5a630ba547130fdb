package app

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/lifecycle"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/retry"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/sched"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// App is a wired correlator.
type App struct {
	cfg       Config
	logger    *zap.Logger
	conn      driver.Conn
	writer    *kafkago.Writer
	admin     *telemetry.AdminServer
	readiness *telemetry.Readiness
	consumer  *stream.Consumer
	scheduler *sched.Scheduler
	Rules     []*rules.Rule
}

// New loads the rules and reference data, connects to ClickHouse and Kafka and builds the
// parts. Nothing runs until Run.
func New(ctx context.Context, cfg Config, logger *zap.Logger, reg *prometheus.Registry) (*App, error) {
	a := &App{cfg: cfg, logger: logger, readiness: &telemetry.Readiness{}}
	var err error
	if cfg.RulesDir != "" {
		a.Rules, err = rules.LoadDir(cfg.RulesDir)
	} else {
		a.Rules, err = rules.LoadDefault()
	}
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	var ref *reference.Snapshot
	if cfg.ReferenceDir != "" {
		ref, err = reference.LoadDir(cfg.ReferenceDir)
	} else {
		ref, err = reference.Load(schemaref.FS)
	}
	if err != nil {
		return nil, fmt.Errorf("load reference data: %w", err)
	}
	a.conn, err = clickhouse.Open(&clickhouse.Options{
		Addr: cfg.ClickHouse.Addr, Auth: clickhouse.Auth{Username: cfg.ClickHouse.Username, Password: cfg.ClickHouse.Password},
		DialTimeout: cfg.ClickHouse.DialTimeout, MaxOpenConns: cfg.ClickHouse.MaxOpenConns, MaxIdleConns: cfg.ClickHouse.MaxOpenConns,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	if err := retry.Default.Do(ctx, a.conn.Ping, nil); err != nil {
		a.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", cfg.ClickHouse.Addr, err)
	}
	if cfg.ClickHouse.Migrate {
		ms, err := chmigrate.Load(chschema.Migrations)
		if err == nil {
			err = retry.Default.Do(ctx, func(ctx context.Context) error {
				_, err := chmigrate.Apply(ctx, a.conn, cfg.ClickHouse.Database, ms, logger)
				return err
			}, nil)
		}
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("migrate clickhouse: %w", err)
		}
	}
	if err := kafka.EnsureTopics(ctx, cfg.Consumer.Brokers, kafka.TopicSpec{Name: cfg.Alerts.Topic, Partitions: cfg.Alerts.Partitions, ReplicationFactor: cfg.Alerts.ReplicationFactor}); err != nil {
		a.Close()
		return nil, fmt.Errorf("create alerts topic: %w", err)
	}
	a.writer, err = kafka.NewWriter(cfg.Producer, cfg.Alerts.Topic)
	if err != nil {
		a.Close()
		return nil, err
	}
	chSink, err := alert.NewClickHouseSink(a.conn, cfg.ClickHouse.Database)
	if err != nil {
		a.Close()
		return nil, err
	}
	sink := alert.Sinks{chSink, alert.NewKafkaSink(a.writer)}
	if cfg.Streaming {
		rb := stream.NewClickHouseRebuilder(a.conn, cfg.ClickHouse.Database, a.Rules)
		a.consumer, err = stream.NewConsumer(cfg.Consumer, a.Rules, ref, rb, sink, logger, reg)
		if err != nil {
			a.Close()
			return nil, err
		}
	}
	if cfg.Scheduled {
		a.scheduler = sched.New(cfg.Scheduler, a.conn, cfg.ClickHouse.Database, a.Rules, sink, logger, reg)
	}
	a.admin, err = telemetry.NewAdminServer(cfg.AdminAddr, reg, a.readiness, logger)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.readiness.AddCheck("clickhouse", func(ctx context.Context) error { return a.conn.Ping(ctx) })
	a.readiness.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, cfg.Consumer.Brokers) })
	logger.Info("rules loaded", zap.Strings("rules", rules.Names(a.Rules)))
	return a, nil
}

// AdminAddr is the admin server's address.
func (a *App) AdminAddr() string { return a.admin.Addr() }

// Run runs until SIGINT/SIGTERM, ctx's end or a part's failure, then shuts down in order:
// readiness off, the consumer finishes and commits its batches, the scheduler finishes its
// evaluation, the admin server stops; then the Kafka writer and ClickHouse are closed.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	g := lifecycle.New(a.logger, a.cfg.ShutdownTimeout)
	stopping := make(chan struct{})
	g.Add("readiness", func(ctx context.Context) error {
		a.readiness.MarkReady()
		select {
		case <-ctx.Done():
		case <-stopping:
		}
		return nil
	}, func(context.Context) error {
		a.readiness.MarkNotReady()
		close(stopping)
		return nil
	})
	if a.consumer != nil {
		g.Add("streaming", a.consumer.Run, a.consumer.Stop)
	}
	if a.scheduler != nil {
		g.Add("scheduler", a.scheduler.Run, a.scheduler.Stop)
	}
	g.Add("admin", a.admin.Run, a.admin.Shutdown)
	return g.Run(ctx)
}

// Close releases the Kafka writer and the ClickHouse connection.
func (a *App) Close() {
	if a.writer != nil {
		if err := a.writer.Close(); err != nil {
			a.logger.Warn("close alerts writer", zap.Error(err))
		}
		a.writer = nil
	}
	if a.conn != nil {
		_ = a.conn.Close()
		a.conn = nil
	}
}
