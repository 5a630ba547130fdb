// Package chtest gives the correlator's integration tests a fresh ClickHouse database with
// Vigie's schema, on the local server that `make up` starts, dropped when the test ends.
package chtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
	"github.com/vigie/vigie/services/correlator/internal/retry"
)

// New connects to the test ClickHouse server and creates a unique database migrated to the
// current schema.
func New(t testing.TB) (driver.Conn, string) {
	t.Helper()
	addr := testenv.ClickHouseAddr(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second, MaxOpenConns: 8, Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, retry.Default.Do(ctx, conn.Ping, nil), "ClickHouse at %s: run make up", addr)
	db := testenv.Name(t, "corr")
	ms, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	// Retried: a connection the server drops is replaced by the pool on the next attempt.
	require.NoError(t, retry.Default.Do(ctx, func(ctx context.Context) error {
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
