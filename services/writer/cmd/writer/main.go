// Command writer consumes detections.enriched.v1 into ClickHouse's detections table, every
// event exactly once in effect (see services/writer/README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/pprof"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/lifecycle"
	"github.com/vigie/vigie/pkg/telemetry"
	wconfig "github.com/vigie/vigie/services/writer/internal/config"
	"github.com/vigie/vigie/services/writer/internal/consume"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg := wconfig.Default()
	if err := config.Load(&cfg, wconfig.EnvPrefix, args); err != nil {
		return err
	}
	log, err := telemetry.NewLogger(cfg.Log, "writer")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	reg := telemetry.NewRegistry()
	if cfg.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	}

	conn, err := sink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	store, err := sink.New(conn, cfg.ClickHouse.Database, cfg.ClickHouse.QueryTimeout)
	if err != nil {
		return err
	}
	dlq, err := kafka.NewWriter(cfg.Producer(), cfg.Kafka.DLQTopic)
	if err != nil {
		return err
	}
	defer dlq.Close()
	w, err := consume.New(cfg.Kafka, store, dlq, log, reg)
	if err != nil {
		return err
	}

	ready := &telemetry.Readiness{}
	ready.AddCheck("clickhouse", store.Ping)
	ready.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, cfg.Kafka.Brokers) })
	admin, err := telemetry.NewAdminServer(cfg.AdminAddr, reg, ready, log)
	if err != nil {
		return err
	}

	// Profiles on the admin port, as in Thanos and Tempo: the writer's cost per row is what
	// its operators tune.
	mux := admin.Mux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)

	log.Info("starting", zap.Strings("brokers", cfg.Kafka.Brokers), zap.String("topic", cfg.Kafka.Topic),
		zap.String("group", cfg.Kafka.GroupID), zap.Strings("clickhouse", cfg.ClickHouse.Addr),
		zap.String("database", cfg.ClickHouse.Database), zap.String("admin", admin.Addr()))
	ready.MarkReady()
	g := lifecycle.New(log, cfg.ShutdownTimeout)
	// Stopped in this order: readiness and the consumer first (it flushes its batches), the
	// admin server last so that /metrics stays up during the drain.
	g.Add("writer", w.Run, func(ctx context.Context) error {
		ready.MarkNotReady()
		return w.Stop(ctx)
	})
	g.Add("admin", admin.Run, admin.Shutdown)
	return g.Run(ctx)
}
