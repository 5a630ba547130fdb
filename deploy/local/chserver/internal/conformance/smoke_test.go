package conformance

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Ping(ctx))
	var v string
	require.NoError(t, conn.QueryRow(ctx, "SELECT version()").Scan(&v))
	t.Log(v)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE t (a UInt64, s String) ENGINE = MergeTree ORDER BY a"))
	b, err := conn.PrepareBatch(ctx, "INSERT INTO t (a, s)")
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, b.Append(uint64(i), "x"))
	}
	require.NoError(t, b.Send())
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&n))
	require.Equal(t, uint64(10), n)
	rows, err := conn.Query(ctx, "SELECT a, s FROM t WHERE a > 100")
	require.NoError(t, err)
	require.False(t, rows.Next())
	require.NoError(t, rows.Err())
	err = conn.Exec(ctx, "SELECT * FROM nope")
	require.Error(t, err)
	t.Log(err)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&n))
}
