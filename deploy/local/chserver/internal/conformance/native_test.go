package conformance

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// {name:Type} parameters over the native protocol, as clickhouse-go sends them: explicitly
// with WithParameters, and from named arguments.
func TestNativeQueryParameters(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"n": "41", "s": "it's a \\ test", "d": "2026-12-03 10:00:00.123", "c": "number",
	}))
	var (
		n  uint16
		s  string
		ts string
		c  uint64
	)
	require.NoError(t, conn.QueryRow(pctx, "SELECT {n:UInt8} + 1, {s:String}, toString({d:DateTime64(3, 'UTC')}), sum({c:Identifier}) FROM numbers(3)").Scan(&n, &s, &ts, &c))
	require.Equal(t, uint16(42), n)
	require.Equal(t, "it's a \\ test", s)
	require.Equal(t, "2026-12-03 10:00:00.123", ts)
	require.Equal(t, uint64(3), c)

	var v uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT {a:UInt64} * 2", clickhouse.Named("a", 21)).Scan(&v))
	require.Equal(t, uint64(42), v)

	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(pctx, "CREATE TABLE "+db+".p (n UInt8, s String) ENGINE = MergeTree ORDER BY n"))
	require.NoError(t, conn.Exec(pctx, "INSERT INTO "+db+".p SELECT {n:UInt8}, {s:String}"))
	require.NoError(t, conn.QueryRow(pctx, "SELECT s FROM "+db+".p WHERE n = {n:UInt8}").Scan(&s))
	require.Equal(t, "it's a \\ test", s)

	err := conn.QueryRow(ctx, "SELECT {missing:UInt8}").Scan(&n)
	require.Equal(t, int32(456), exceptionCode(t, err))
}

// Progress packets follow the engine's chunks, and ProfileInfo counts the result.
func TestNativeProgressAndProfile(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	var progressRows, progressPackets atomic.Uint64
	var profileRows, profileBlocks atomic.Uint64
	qctx := clickhouse.Context(ctx,
		clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 1000}),
		clickhouse.WithProgress(func(p *clickhouse.Progress) {
			progressPackets.Add(1)
			progressRows.Add(p.Rows)
		}),
		clickhouse.WithProfileInfo(func(p *clickhouse.ProfileInfo) {
			profileRows.Add(p.Rows)
			profileBlocks.Add(p.Blocks)
		}))
	rows, err := conn.Query(qctx, "SELECT number FROM numbers(10000)")
	require.NoError(t, err)
	got := 0
	for rows.Next() {
		got++
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, 10000, got)
	require.Equal(t, uint64(10000), profileRows.Load())
	require.GreaterOrEqual(t, profileBlocks.Load(), uint64(2))
	// Progress follows each chunk of chDB's output whose read counts moved; a chunk may hold
	// every block of a small result, so one packet is all a client can count on.
	require.GreaterOrEqual(t, progressPackets.Load(), uint64(1), "a Progress packet")
	// Rows read from storage, as chDB counts them chunk by chunk (its last chunk's count can
	// come after the stream has ended, and is then not reported).
	require.Greater(t, progressRows.Load(), uint64(0), "rows read, in Progress packets")
	require.LessOrEqual(t, progressRows.Load(), uint64(10000))
}
