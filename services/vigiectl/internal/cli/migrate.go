package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/telemetry"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// MigrateConfig is the configuration of `vigiectl migrate`.
type MigrateConfig struct {
	Log        telemetry.LogConfig `yaml:"log"`
	ClickHouse MigrateClickHouse   `yaml:"clickhouse"`
	// AnalystRole also applies schemas/clickhouse/roles/analyst.sql (needs access
	// management; the local chDB-based server has none).
	AnalystRole bool `yaml:"analyst_role"`
}

// MigrateClickHouse is the shared clickhouse block and the cluster to migrate.
type MigrateClickHouse struct {
	clickhouse.Config `yaml:",inline"`
	// Cluster, when set, applies the cluster variant of the migrations (Replicated tables,
	// <table>_local and Distributed <table>, ON CLUSTER; docs/clickhouse-cluster.md) through
	// the server at addrs, a member of this cluster (remote_servers name, also the servers'
	// {cluster} macro). Empty: one server, plain MergeTree tables.
	Cluster string `yaml:"cluster"`
}

// Validate names the first bad key.
func (c *MigrateConfig) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if err := c.ClickHouse.Validate("clickhouse"); err != nil {
		return err
	}
	if c.ClickHouse.Cluster != "" {
		if err := chmigrate.ValidateClusterName(c.ClickHouse.Cluster); err != nil {
			return fmt.Errorf("clickhouse.cluster: %w", err)
		}
	}
	return nil
}

// newLogger is a command's logger, without the stack traces a console logger adds to
// warnings: a command's warnings are for an operator, not a developer.
func newLogger(c telemetry.LogConfig) (*zap.Logger, error) {
	log, err := telemetry.NewLogger(c, Name)
	if err != nil {
		return nil, err
	}
	return log.WithOptions(zap.AddStacktrace(zap.DPanicLevel)), nil
}

// defaultLog is a command's log: readable, and quiet unless something is wrong (the
// commands print their results on stdout).
func defaultLog() telemetry.LogConfig { return telemetry.LogConfig{Format: "console", Level: "warn"} }

func runMigrate(ctx context.Context, s streams, args []string) error {
	cfg := &MigrateConfig{Log: defaultLog(), ClickHouse: MigrateClickHouse{Config: clickhouse.DefaultConfig()}}
	if _, err := parse(s, "migrate", flag.NewFlagSet("migrate", flag.ContinueOnError), cfg, args); err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	migrations, err := chmigrate.Load(chschema.Migrations)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse.Config, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	var res chmigrate.Result
	where := "database " + cfg.ClickHouse.Database
	if cfg.ClickHouse.Cluster == "" {
		res, err = chmigrate.Apply(ctx, conn, cfg.ClickHouse.Database, migrations, log.Named("migrate"))
	} else {
		where += " on cluster " + cfg.ClickHouse.Cluster
		res, err = chmigrate.ApplyCluster(ctx, conn, cfg.ClickHouse.Database, migrations,
			chmigrate.Cluster{Name: cfg.ClickHouse.Cluster, Tables: chschema.ClusterTables}, log.Named("migrate"))
	}
	if err != nil {
		return err
	}
	log.Info("schema up to date", zap.String("database", cfg.ClickHouse.Database), zap.String("cluster", cfg.ClickHouse.Cluster),
		zap.Any("applied", res.Applied), zap.Any("already_applied", res.Skipped))
	fmt.Fprintf(s.stdout, "%s: %d migrations applied%s, %d already applied\n",
		where, len(res.Applied), names(res.Applied, migrations), len(res.Skipped))
	if cfg.AnalystRole {
		if cfg.ClickHouse.Cluster == "" {
			err = chmigrate.ApplySQL(ctx, conn, cfg.ClickHouse.Database, chschema.AnalystRole)
		} else {
			err = chmigrate.ApplyAccessSQL(ctx, conn, cfg.ClickHouse.Database, chschema.AnalystRole,
				chmigrate.Cluster{Name: cfg.ClickHouse.Cluster, Tables: chschema.ClusterTables})
		}
		if err != nil {
			return fmt.Errorf("analyst role: %w", err)
		}
		fmt.Fprintf(s.stdout, "%s: analyst role applied\n", where)
	}
	return nil
}

// names lists the migrations of versions as "(0001_detections, 0002_rollups)".
func names(versions []uint32, migrations []chmigrate.Migration) string {
	if len(versions) == 0 {
		return ""
	}
	byVersion := map[uint32]string{}
	for _, m := range migrations {
		byVersion[m.Version] = m.Name
	}
	parts := make([]string, len(versions))
	for i, v := range versions {
		parts[i] = fmt.Sprintf("%04d_%s", v, byVersion[v])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
