package sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/writer/internal/chtest"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sample"
)

// BenchmarkAppendTo measures the client-side cost of one row in clickhouse-go's batch:
// column-wise append of a prepared block (no network).
func BenchmarkAppendTo(b *testing.B) {
	conn, db := chtest.Database(b)
	gen := sample.New(1, 10000, time.Now())
	var blk rows.Block
	for i := range 10000 {
		e := gen.Next()
		require.NoError(b, blk.Add(&e, "t", 0, int64(i)))
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i += blk.Len() {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO `"+db+"`.detections ("+rows.Columns+")")
		require.NoError(b, err)
		require.NoError(b, blk.AppendTo(batch))
		require.NoError(b, batch.Abort())
	}
}
