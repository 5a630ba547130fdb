package app

import (
	"context"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/refwatch"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/enricher/internal/chref"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
	"github.com/vigie/vigie/services/enricher/internal/pipeline"
)

// Build wires the enricher on s: the reference store (a service does not start on broken
// reference data), the ClickHouse reference loader when clickhouse.addrs is set, the two
// producers, the consumer of the raw topic, and SIGHUP reloading the reference data.
func Build(ctx context.Context, s *service.Service, cfg *Config) error {
	_, err := build(ctx, s, cfg)
	return err
}

// enricher is what build wired; tests look inside it.
type enricher struct {
	store  *refwatch.Store
	tables atomic.Pointer[enrich.Table]
	syncer *chref.Syncer
}

func build(ctx context.Context, s *service.Service, cfg *Config) (*enricher, error) {
	logger, reg := s.Logger, s.Registerer()
	e := &enricher{}
	store, err := refwatch.Open(s, cfg.Reference)
	if err != nil {
		return nil, err
	}
	e.store = store

	if cfg.ClickHouseEnabled() {
		conn, err := clickhouse.Open(ctx, cfg.ClickHouse.Config, logger)
		if err != nil {
			return nil, err
		}
		s.OnClose(conn.Close)
		s.AddCheck("clickhouse", clickhouse.Ping(conn))
		var loader *chref.Loader
		if cfg.ClickHouse.Cluster != "" {
			loader, err = chref.NewClusterLoader(conn, cfg.ClickHouse.Database, cfg.ClickHouse.Cluster, logger)
		} else {
			loader, err = chref.NewLoader(conn, cfg.ClickHouse.Database, logger)
		}
		if err != nil {
			return nil, err
		}
		e.syncer = chref.NewSyncer(loader, logger, reg)
	}
	// Compile each new version for enrichment and hand it to the ClickHouse loader. The
	// compiled table is swapped in right after the snapshot, by the reloading goroutine.
	store.OnChange(func(snap *reference.Snapshot) {
		e.tables.Store(enrich.Compile(snap))
		if e.syncer != nil {
			e.syncer.Notify(snap)
		}
	})

	enriched, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.Enriched)
	if err != nil {
		return nil, err
	}
	s.OnClose(enriched.Close)
	dlq, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.DLQ)
	if err != nil {
		return nil, err
	}
	s.OnClose(dlq.Close)
	p := pipeline.New(&e.tables, enriched, dlq, logger, reg)
	consumer, err := kafka.NewConsumer(cfg.Kafka, cfg.Consumer, cfg.Topics.Raw, p.Handle, kafka.Hooks{}, logger, s.Registry)
	if err != nil {
		return nil, err
	}
	s.AddCheck("kafka", consumer.Ready)

	// Stopped in this order: the reference watch (refwatch.Open added it), the consumer,
	// which finishes and commits the batches in hand, then the ClickHouse loader; the
	// producers and the ClickHouse connection close after every part.
	s.Add("consumer", consumer.Run, consumer.Stop)
	if e.syncer != nil {
		s.Add("clickhouse-reference", e.syncer.Run, nil)
	}
	logger.Info("enricher wired", zap.Stringer("config", cfg))
	return e, nil
}
