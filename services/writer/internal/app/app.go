// Package app wires the writer on the service skeleton (pkg/service): the ClickHouse
// connection and sink, the dead-letter producer, the shared consumer of topics.enriched
// with the writer's handler and assignment hooks, readiness checks and metrics.
package app

import (
	"context"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/writer/internal/config"
	"github.com/vigie/vigie/services/writer/internal/consume"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// Name is the service's name: metrics vigie_writer_*, environment VIGIE_WRITER_*.
const Name = "writer"

// Build wires the writer into s.
func Build(ctx context.Context, s *service.Service, cfg *config.Config) error {
	if cfg.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	}
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse.Config, s.Logger)
	if err != nil {
		return err
	}
	s.OnClose(conn.Close)
	s.AddCheck("clickhouse", clickhouse.Ping(conn))
	store, err := sink.NewCluster(conn, cfg.ClickHouse.Database, cfg.ClickHouse.Cluster, cfg.ClickHouse.QueryTimeout)
	if err != nil {
		return err
	}
	dlq, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.DLQ)
	if err != nil {
		return err
	}
	s.OnClose(dlq.Close)

	insertRetry := cfg.Consumer.Retry
	if insertRetry == (retry.Policy{}) {
		insertRetry = retry.Default()
	}
	insertRetry.MaxElapsed = config.InsertRetryBudget
	w, err := consume.New(consume.Config{
		Topic:                cfg.Topics.Enriched,
		MaxPendingRows:       cfg.MaxPendingRows,
		MaxConcurrentInserts: cfg.MaxConcurrentInserts,
		InsertRetry:          insertRetry,
	}, store, dlq, s.Logger, s.Registerer())
	if err != nil {
		return err
	}
	c, err := kafka.NewConsumer(cfg.Kafka, cfg.Consumer, cfg.Topics.Enriched, w.Handle, w.Hooks(), s.Logger, s.Registry)
	if err != nil {
		return err
	}
	s.AddCheck("kafka", c.Ready)
	// The consumer is the only part: on shutdown it finishes and commits the batches in
	// hand (each inserted by its handler), then the closers close the dead-letter producer
	// and ClickHouse.
	s.Add("consumer", c.Run, c.Stop)

	s.Logger.Info("writing", zap.Strings("brokers", cfg.Kafka.Brokers), zap.String("topic", cfg.Topics.Enriched),
		zap.String("group", cfg.Consumer.GroupID), zap.String("dlq", cfg.Topics.DLQ),
		zap.Strings("clickhouse", cfg.ClickHouse.Addrs), zap.String("database", cfg.ClickHouse.Database))
	return nil
}
