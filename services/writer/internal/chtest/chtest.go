// Package chtest gives the writer's integration tests a fresh, migrated database on the
// local ClickHouse server and the checks they share.
package chtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// Config returns a ClickHouse configuration for the local server and database db.
func Config(t testing.TB, db string) clickhouse.Config {
	c := clickhouse.DefaultConfig()
	c.Addrs = []string{testenv.ClickHouseAddr(t)}
	c.Database = db
	return c
}

// Database creates a uniquely named database with the schema applied, dropped at the end
// of the test.
func Database(t testing.TB) (driver.Conn, string) {
	t.Helper()
	ctx := context.Background()
	db := testenv.Name(t, "writer")
	conn, err := clickhouse.Open(ctx, Config(t, db), zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
		_ = conn.Close()
	})
	migrations, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	_, err = chmigrate.Apply(ctx, conn, db, migrations, zap.NewNop())
	require.NoError(t, err)
	return conn, db
}

// Totals are the row counts of detections and the event totals of each rollup.
type Totals struct {
	Rows, DistinctEvents, DistinctOffsets       uint64
	PerMinute, TACPerDay, Presence, OffsetsRows uint64
	TACBlockPerDay, TACBlockNational            uint64
	// Raw-table equivalents of the rollups' filtered totals.
	RawWithTAC, RawWithDevice, RawWithBlock uint64
	// Distinct devices: exact from the raw table, merged from the per-minute rollup.
	RawDevices, RollupDevices uint64
}

// Count reads Totals from db.
func Count(t testing.TB, conn driver.Conn, db string) Totals {
	t.Helper()
	ctx := context.Background()
	var tot Totals
	q := func(sql string, dest ...any) {
		require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(sql, "`"+db+"`")).Scan(dest...), sql)
	}
	q("SELECT count(), uniqExact(sensor_id, event_id), uniqExact(kafka_partition, kafka_offset), countIf(tac != ''), countIf(device_id != ''), uniqExactIf(device_id, device_id != ''), countIf(tac != '' AND serial_block != '') FROM %s.detections",
		&tot.Rows, &tot.DistinctEvents, &tot.DistinctOffsets, &tot.RawWithTAC, &tot.RawWithDevice, &tot.RawDevices, &tot.RawWithBlock)
	q("SELECT sum(events), uniqMerge(devices) FROM %s.detections_per_minute", &tot.PerMinute, &tot.RollupDevices)
	q("SELECT sum(events) FROM %s.tac_per_day", &tot.TACPerDay)
	q("SELECT sum(events) FROM %s.device_presence_per_day", &tot.Presence)
	q("SELECT sum(events) FROM %s.serial_block_per_day", &tot.TACBlockPerDay)
	q("SELECT sum(events) FROM %s.serial_block_national_per_day", &tot.TACBlockNational)
	tot.OffsetsRows = Written(t, conn, db)
	return tot
}

// Written is how many rows the writer has recorded as written (writer_offsets): a cheap
// query, for polling while the writer runs, where Count would compete with its inserts.
func Written(t testing.TB, conn driver.Conn, db string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT sum(rows) FROM `"+db+"`.writer_offsets").Scan(&n))
	return n
}

// RequireConsistent checks that detections holds want rows, each event once, and that
// every rollup agrees with it.
func RequireConsistent(t require.TestingT, tot Totals, want uint64) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	require.Equal(t, want, tot.Rows, "rows in detections")
	require.Equal(t, want, tot.DistinctEvents, "distinct (sensor_id, event_id)")
	require.Equal(t, tot.Rows, tot.PerMinute, "detections_per_minute total")
	require.Equal(t, tot.RawWithTAC, tot.TACPerDay, "tac_per_day total")
	require.Equal(t, tot.RawWithDevice, tot.Presence, "device_presence_per_day total")
	require.Equal(t, tot.RawWithBlock, tot.TACBlockPerDay, "serial_block_per_day total")
	require.Equal(t, tot.RawWithBlock, tot.TACBlockNational, "serial_block_national_per_day total")
	require.Equal(t, tot.Rows, tot.OffsetsRows, "writer_offsets rows")
	// uniq hashes values to 32 bits: allow for a rare collision.
	require.InDelta(t, tot.RawDevices, tot.RollupDevices, float64(tot.RawDevices)/1000+1, "distinct devices")
}

// WaitConsistent waits, while a writer may still be inserting, until count's Totals pass
// RequireConsistent for want rows, and fails with the last mismatch after a minute. A
// snapshot taken during an insert can see its rows in detections and in some views but
// not yet in the others (ClickHouse stores a table's part and each view's part one after
// the other): consistency is checked once the writes are over, never on such a snapshot.
func WaitConsistent(t testing.TB, count func() Totals, want uint64) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) { RequireConsistent(c, count(), want) }, time.Minute, 200*time.Millisecond)
}
