package chref

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

func setup(t *testing.T) (*Loader, string) {
	t.Helper()
	conn := open(t)
	db := testenv.Name(t, "ref")
	migrate(t, conn, db)
	l, err := NewLoader(conn, db, zaptest.NewLogger(t))
	require.NoError(t, err)
	return l, db
}

func open(t *testing.T) driver.Conn {
	t.Helper()
	cfg := clickhouse.DefaultConfig()
	cfg.Addrs = []string{testenv.ClickHouseAddr(t)}
	cfg.Database = "default"
	conn, err := clickhouse.Open(context.Background(), cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// migrate creates db with Vigie's migrations, dropped when the test ends.
func migrate(t *testing.T, conn driver.Conn, db string) {
	t.Helper()
	ctx := context.Background()
	migrations, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	// The local server sometimes drops a connection under load: migrations are
	// idempotent, so try again.
	for attempt := 1; ; attempt++ {
		_, err = chmigrate.Apply(ctx, conn, db, migrations, zaptest.NewLogger(t))
		if err == nil || attempt == 5 {
			break
		}
		t.Logf("migrate attempt %d: %v", attempt, err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`") })
}

func count(t *testing.T, l *Loader, query string) uint64 {
	t.Helper()
	var n uint64
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = l.conn.QueryRow(context.Background(), query).Scan(&n); err == nil {
			return n
		}
		t.Logf("query attempt %d: %v", attempt, err) // the local server drops connections under load
	}
	require.NoError(t, err)
	return n
}

func TestLoadReferenceTables(t *testing.T) {
	l, db := setup(t)
	ctx := context.Background()
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)

	n, err := l.Load(ctx, snap)
	require.NoError(t, err)
	require.Equal(t, len(Tables), n)
	st := snap.Stats()
	require.Equal(t, uint64(st.Facilities), count(t, l, "SELECT count() FROM `"+db+"`.facilities"))
	require.Equal(t, uint64(st.Sensors), count(t, l, "SELECT count() FROM `"+db+"`.sensors"))
	require.Equal(t, uint64(st.TACs), count(t, l, "SELECT count() FROM `"+db+"`.tac_models"))
	require.Equal(t, uint64(st.Operators), count(t, l, "SELECT count() FROM `"+db+"`.operators"))
	require.Equal(t, uint64(3), count(t, l, "SELECT count() FROM `"+db+"`.tac_models WHERE mini_phone"))

	// An analyst's join: sensors per DISP.
	require.Equal(t, uint64(st.Sensors), count(t, l, "SELECT count() FROM `"+db+"`.sensors s INNER JOIN `"+db+"`.facilities f ON s.facility_id = f.facility_id WHERE f.disp != ''"))
	require.Equal(t, uint64(4957), count(t, l, "SELECT toUInt64(round(assumeNotNull(lat) * 100)) FROM `"+db+"`.facilities WHERE facility_id = 'cp-laon'"))

	// The same version again: nothing rewritten.
	n, err = l.Load(ctx, snap)
	require.NoError(t, err)
	require.Zero(t, n)

	// A new version replaces every table whole; no staging table is left behind.
	files, err := reftest.Files(reftest.Options{Seed: 2})
	require.NoError(t, err)
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: v}
	}
	snap2, err := reference.Load(m)
	require.NoError(t, err)
	require.NotEqual(t, snap.Version(), snap2.Version())
	n, err = l.Load(ctx, snap2)
	require.NoError(t, err)
	require.Equal(t, len(Tables), n)
	require.Equal(t, uint64(snap2.Stats().Sensors), count(t, l, "SELECT count() FROM `"+db+"`.sensors"))
	require.Equal(t, uint64(1), count(t, l, "SELECT uniqExact(ref_version) FROM `"+db+"`.sensors"))
	require.Equal(t, uint64(0), count(t, l, "SELECT count() FROM system.tables WHERE database = '"+db+"' AND name LIKE '%_load_%'"))
}

func TestSyncerLoadsLatest(t *testing.T) {
	l, db := setup(t)
	s := NewSyncer(l, zaptest.NewLogger(t), prometheus.NewRegistry())
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Notify(snap)
	require.Eventually(t, func() bool { return s.LoadedVersion() == snap.Version() }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, uint64(snap.Stats().TACs), count(t, l, "SELECT count() FROM `"+db+"`.tac_models"))
	cancel()
	require.NoError(t, <-done)
}

// TestSyncerRetriesUntilTablesExist starts the syncer before the migrate step made the
// tables: the loads fail and are retried (counted as errors) until the tables appear, then
// the version is loaded.
func TestSyncerRetriesUntilTablesExist(t *testing.T) {
	conn := open(t)
	db := testenv.Name(t, "ref")
	l, err := NewLoader(conn, db, zaptest.NewLogger(t))
	require.NoError(t, err)
	fast := retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}
	l.attempt = fast
	s := NewSyncer(l, zaptest.NewLogger(t), prometheus.NewRegistry())
	s.policy = fast
	fsys, err := reftest.FS(reftest.Options{Seed: 3})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	s.Notify(snap)
	// The local server takes up to a second or more per refused query under load.
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.loads.WithLabelValues("error")) >= 1 }, 90*time.Second, 20*time.Millisecond)
	require.Empty(t, s.LoadedVersion())

	migrate(t, conn, db)
	require.Eventually(t, func() bool { return s.LoadedVersion() == snap.Version() }, 60*time.Second, 20*time.Millisecond)
	require.Equal(t, float64(1), testutil.ToFloat64(s.loads.WithLabelValues("ok")))
}
