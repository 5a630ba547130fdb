package sink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
	"github.com/vigie/vigie/services/writer/internal/chtest"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sample"
	"github.com/vigie/vigie/services/writer/internal/sink"

	"go.uber.org/zap"
)

func block(t *testing.T, gen *sample.Generator, partition int, first int64, n int) *rows.Block {
	t.Helper()
	var b rows.Block
	for i := range n {
		e := gen.Next()
		require.NoError(t, b.Add(&e, "detections.enriched.v1", partition, first+int64(i)))
	}
	return &b
}

func TestSchema(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Database(t)

	t.Run("migrations twice are a no-op", func(t *testing.T) {
		migrations, err := chmigrate.Load(chschema.Migrations)
		require.NoError(t, err)
		res, err := chmigrate.Apply(ctx, conn, db, migrations, zap.NewNop())
		require.NoError(t, err)
		require.Empty(t, res.Applied)
		require.Len(t, res.Skipped, len(migrations))
	})

	tests := []struct {
		table string
		want  []string
	}{
		{"detections", []string{"TTL toDateTime(observed_at) + toIntervalDay(90) WHERE NOT judicial_hold", "non_replicated_deduplication_window = 10000", "PARTITION BY toYYYYMM(observed_at)", "DateTime64(3, 'UTC')"}},
		{"device_presence_per_day", []string{"TTL day + toIntervalDay(90) WHERE NOT judicial_hold", "non_replicated_deduplication_window = 10000"}},
		{"detections_per_minute", []string{"non_replicated_deduplication_window = 10000"}},
		{"tac_per_day", []string{"non_replicated_deduplication_window = 10000"}},
		{"serial_block_per_day", []string{"TTL day + toIntervalDay(90)", "non_replicated_deduplication_window = 10000"}},
		{"serial_block_national_per_day", []string{"TTL day + toIntervalDay(90)", "non_replicated_deduplication_window = 10000"}},
		{"writer_offsets", []string{"non_replicated_deduplication_window = 10000"}},
		{"alerts", []string{"ReplacingMergeTree(version)", "TTL toDateTime(updated_at) + toIntervalDay(90) WHERE NOT judicial_hold"}},
	}
	for _, tt := range tests {
		t.Run("SHOW CREATE TABLE "+tt.table, func(t *testing.T) {
			var ddl string
			if err := conn.QueryRow(ctx, "SHOW CREATE TABLE `"+db+"`."+tt.table).Scan(&ddl); err != nil {
				// The local chDB-based server cannot stream SHOW statements (code 36);
				// system.tables holds the same statement.
				t.Logf("SHOW CREATE TABLE: %v; reading system.tables instead", err)
				require.NoError(t, conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?", db, tt.table).Scan(&ddl))
			}
			for _, w := range tt.want {
				require.Contains(t, ddl, w)
			}
		})
	}
}

func TestInsertRetriedWithItsTokenIsNotDuplicated(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Database(t)
	s, err := sink.New(conn, db, time.Minute)
	require.NoError(t, err)
	gen := sample.New(1, 500, time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)) // spans two months: two blocks per insert

	first := block(t, gen, 3, 0, 5000)
	second := block(t, gen, 3, 5000, 3000)
	require.NoError(t, s.Insert(ctx, []*rows.Block{first}, "t:3:0-4999:5000"))
	// The ambiguous failure: the client does not know whether the insert landed, so it
	// sends the same rows with the same token again, more than once.
	require.NoError(t, s.Insert(ctx, []*rows.Block{first}, "t:3:0-4999:5000"))
	require.NoError(t, s.Insert(ctx, []*rows.Block{second}, "t:3:5000-7999:3000"))
	require.NoError(t, s.Insert(ctx, []*rows.Block{first}, "t:3:0-4999:5000"))

	// Blocks of two partitions merged into one insert, retried: stored once as well.
	p4, p5 := block(t, gen, 4, 0, 700), block(t, gen, 5, 100, 300)
	require.NoError(t, s.Insert(ctx, []*rows.Block{p4, p5}, "t:4:0-699:700,t:5:100-399:300"))
	require.NoError(t, s.Insert(ctx, []*rows.Block{p4, p5}, "t:4:0-699:700,t:5:100-399:300"))

	tot := chtest.Count(t, conn, db)
	chtest.RequireConsistent(t, tot, 9000)

}

// TestExisting: the identity check finds exactly the identities detections holds, whatever
// their months, characters or number, and nothing else (a new event sharing a sensor, an
// event_id or an observed_at with a stored one is new).
func TestExisting(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Database(t)
	s, err := sink.New(conn, db, time.Minute)
	require.NoError(t, err)
	gen := sample.New(7, 500, time.Now().AddDate(0, 0, -45)) // within the 90 days of the TTL

	stored := block(t, gen, 0, 0, 8000) // more than one check query, and more than max_query_size in one
	// Late events weeks apart (other months), and identities with the characters a literal
	// must escape.
	stored.ObservedAt[10] = stored.ObservedAt[10].AddDate(0, 0, -40)
	stored.ObservedAt[20] = stored.ObservedAt[20].AddDate(0, 0, 40)
	stored.EventID[30], stored.EventID[31] = `it's`, `back\slash`
	stored.SensorID[31] = `s'\`
	require.NoError(t, s.Insert(ctx, []*rows.Block{stored}, "existing-test"))

	found, err := s.Existing(ctx, stored)
	require.NoError(t, err)
	require.Len(t, found, stored.Len(), "every stored identity is found")
	for _, i := range []int{10, 20, 30, 31} {
		require.Contains(t, found, sink.Identity{SensorID: stored.SensorID[i], EventID: stored.EventID[i]})
	}

	fresh := block(t, gen, 0, 8000, 1000)
	fresh.SensorID[0], fresh.ObservedAt[0] = stored.SensorID[5], stored.ObservedAt[5]                                      // same sensor and time
	fresh.EventID[1], fresh.ObservedAt[1] = stored.EventID[6], stored.ObservedAt[6]                                        // same event_id and time, other sensor
	fresh.SensorID[2], fresh.EventID[2], fresh.ObservedAt[2] = stored.SensorID[7], stored.EventID[7], stored.ObservedAt[7] // a duplicate
	found, err = s.Existing(ctx, fresh)
	require.NoError(t, err)
	require.Equal(t, map[sink.Identity]struct{}{{SensorID: stored.SensorID[7], EventID: stored.EventID[7]}: {}}, found)

	one := stored.Slice(31, 32)
	found, err = s.Existing(ctx, one)
	require.NoError(t, err)
	require.Len(t, found, 1, "a one-row block")
	found, err = s.Existing(ctx, &rows.Block{})
	require.NoError(t, err)
	require.Empty(t, found)
}

func TestClassify(t *testing.T) {
	_, db := chtest.Database(t)
	conn, err := clickhouse.Open(context.Background(), chtest.Config(t, db), nil)
	require.NoError(t, err)
	defer conn.Close()
	ctx := context.Background()

	tests := []struct {
		name string
		sql  string
		want sink.Class
	}{
		{"unknown table is fatal", "INSERT INTO `" + db + "`.nope (x) VALUES (1)", sink.Fatal},
		{"syntax error is fatal", "SELEC 1", sink.Fatal},
		{"type mismatch is rejected", "INSERT INTO `" + db + "`.detections (event_id, observed_at) SELECT 'x', 'not a time'", sink.Rejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := conn.Exec(ctx, tt.sql)
			require.Error(t, err)
			require.Equal(t, tt.want, sink.Classify(err), err.Error())
		})
	}
	require.Equal(t, sink.Retryable, sink.Classify(context.DeadlineExceeded))
	require.Equal(t, sink.Rejected, sink.Classify(sink.ErrRejected))
	require.True(t, strings.Contains(sink.ErrRejected.Error(), "rejected"))
}

// TestExistingSparse: a block whose times are spread over weeks (a replay of sparse
// traffic: one time range per event) is checked within ClickHouse's query size.
func TestExistingSparse(t *testing.T) {
	ctx := context.Background()
	conn, db := chtest.Database(t)
	s, err := sink.New(conn, db, time.Minute)
	require.NoError(t, err)
	gen := sample.New(8, 500, time.Now().AddDate(0, 0, -80))
	b := block(t, gen, 0, 0, 5000)
	for i := range b.ObservedAt {
		b.ObservedAt[i] = b.ObservedAt[i].Add(time.Duration(i) * 23 * time.Minute) // 80 days
	}
	require.NoError(t, s.Insert(ctx, []*rows.Block{b}, "sparse-test"))
	found, err := s.Existing(ctx, b)
	require.NoError(t, err)
	require.Len(t, found, b.Len())
}
