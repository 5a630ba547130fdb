// Command migrate applies Vigie's ClickHouse migrations (schemas/clickhouse) to a database,
// idempotently; with -analyst_role it also creates the read-only analyst role.
//
//	migrate -clickhouse.addr=127.0.0.1:19000 -clickhouse.database=vigie [-analyst_role]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/telemetry"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// Config is the migrate command's configuration (env VIGIE_MIGRATE_*).
type Config struct {
	Log        telemetry.LogConfig `yaml:"log"`
	ClickHouse sink.Config         `yaml:"clickhouse"`
	// AnalystRole also applies schemas/clickhouse/roles/analyst.sql (needs access
	// management; the local chDB-based server has none).
	AnalystRole bool `yaml:"analyst_role"`
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	return c.ClickHouse.Validate("clickhouse")
}

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg := Config{Log: telemetry.LogConfig{Format: "console", Level: "info"}, ClickHouse: sink.DefaultConfig()}
	if err := config.Load(&cfg, "VIGIE_MIGRATE", args); err != nil {
		return err
	}
	log, err := telemetry.NewLogger(cfg.Log, "migrate")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	migrations, err := chmigrate.Load(chschema.Migrations)
	if err != nil {
		return err
	}
	conn, err := sink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := chmigrate.Apply(ctx, conn, cfg.ClickHouse.Database, migrations, log)
	if err != nil {
		return err
	}
	log.Info("schema up to date", zap.String("database", cfg.ClickHouse.Database),
		zap.Any("applied", res.Applied), zap.Any("already_applied", res.Skipped))
	if cfg.AnalystRole {
		if err := chmigrate.ApplySQL(ctx, conn, cfg.ClickHouse.Database, chschema.AnalystRole); err != nil {
			return fmt.Errorf("analyst role: %w", err)
		}
		log.Info("analyst role applied")
	}
	return nil
}
