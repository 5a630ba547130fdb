// Package chtest gives the correlator's integration tests a fresh ClickHouse database with
// Vigie's schema, on the local server that `make up` starts, dropped when the test ends.
package chtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// Config is the test server's configuration, for database db.
func Config(t testing.TB, db string) clickhouse.Config {
	cfg := clickhouse.DefaultConfig()
	cfg.Addrs = []string{testenv.ClickHouseAddr(t)}
	cfg.Database = db
	return cfg
}

// New connects to the test ClickHouse server and creates a unique database migrated to the
// current schema (with pkg/chmigrate, as vigiectl migrate does: the correlator itself never
// migrates).
func New(t testing.TB) (driver.Conn, string) {
	t.Helper()
	db := testenv.Name(t, "corr")
	cfg := Config(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(ctx, cfg, nil)
	require.NoError(t, err)
	require.NoError(t, retry.Do(ctx, retry.Default(), clickhouse.Ping(conn), nil), "ClickHouse at %v: run make up", cfg.Addrs)
	ms, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	// Retried: a connection the server drops is replaced by the pool on the next attempt.
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
		_, err := chmigrate.Apply(ctx, conn, db, ms, zap.NewNop())
		return err
	}, nil))
	t.Cleanup(func() {
		if os.Getenv("CORRELATOR_KEEP_DB") != "" {
			t.Logf("keeping database %s", db)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`")
		_ = conn.Close()
	})
	return conn, db
}
