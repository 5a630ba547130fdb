package chmigrate_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/testenv"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"comments and two statements", "-- header; not a statement\nCREATE TABLE IF NOT EXISTS {db}.a (x UInt8)\nENGINE = Memory;\n\nCREATE VIEW IF NOT EXISTS {db}.v AS SELECT 1;\n",
			[]string{"CREATE TABLE IF NOT EXISTS {db}.a (x UInt8)\nENGINE = Memory", "CREATE VIEW IF NOT EXISTS {db}.v AS SELECT 1"}},
		{"last statement without semicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"semicolon inside a line", "SELECT ';' AS x;\n", []string{"SELECT ';' AS x"}},
		{"empty", "-- nothing\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, chmigrate.SplitStatements(tt.sql))
		})
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []uint32
		wantErr error
	}{
		{"sorted by version", fstest.MapFS{
			"0002_b.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS {db}.b (x UInt8) ENGINE = Memory;\n")},
			"0001_a.sql": {Data: []byte("CREATE DATABASE IF NOT EXISTS {db};\n")},
			"README.md":  {Data: []byte("not a migration")},
		}, []uint32{1, 2}, nil},
		{"not idempotent", fstest.MapFS{
			"0001_a.sql": {Data: []byte("CREATE TABLE {db}.a (x UInt8) ENGINE = Memory;\n")},
		}, nil, chmigrate.ErrNotIdempotent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chmigrate.Load(tt.files)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var versions []uint32
			for _, m := range got {
				versions = append(versions, m.Version)
			}
			require.Equal(t, tt.want, versions)
		})
	}
}

func TestBindRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "a-b", "a`b", "1abc", "a b", "x;DROP"} {
		_, err := chmigrate.Bind("SELECT 1 FROM {db}.t", name)
		require.ErrorIs(t, err, chmigrate.ErrBadDatabaseName, name)
	}
	q, err := chmigrate.Bind("SELECT 1 FROM {db}.t", "vigie_test1")
	require.NoError(t, err)
	require.Equal(t, "SELECT 1 FROM `vigie_test1`.t", q)
}

var testMigrations = fstest.MapFS{
	"0001_base.sql": {Data: []byte(`CREATE TABLE IF NOT EXISTS {db}.t
(
    id UInt64
)
ENGINE = MergeTree
ORDER BY id;

CREATE TABLE IF NOT EXISTS {db}.t_count (n SimpleAggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree ORDER BY tuple();
`)},
	"0002_view.sql": {Data: []byte("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.t_count_mv TO {db}.t_count AS SELECT count() AS n FROM {db}.t;\n")},
}

func connect(t *testing.T) driver.Conn {
	t.Helper()
	user, password := testenv.ClickHouseUser()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{testenv.ClickHouseAddr(t)}, Auth: clickhouse.Auth{Username: user, Password: password}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.Ping(context.Background()))
	return conn
}

func dropDatabase(t *testing.T, conn driver.Conn, db string) {
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`") })
}

func TestApplyTwiceIsANoOp(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	db := testenv.Name(t, "mig")
	dropDatabase(t, conn, db)
	migs, err := chmigrate.Load(testMigrations)
	require.NoError(t, err)

	first, err := chmigrate.Apply(ctx, conn, db, migs, zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 2}, first.Applied)

	second, err := chmigrate.Apply(ctx, conn, db, migs, zap.NewNop())
	require.NoError(t, err)
	require.Empty(t, second.Applied)
	require.Equal(t, []uint32{1, 2}, second.Skipped)

	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.schema_migrations").Scan(&n))
	require.EqualValues(t, 2, n)
}

func TestApplyConcurrently(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	other := connect(t)
	db := testenv.Name(t, "mig")
	dropDatabase(t, conn, db)
	migs, err := chmigrate.Load(testMigrations)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []driver.Conn{conn, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = chmigrate.Apply(ctx, c, db, migs, zap.NewNop())
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.schema_migrations FINAL").Scan(&n))
	require.EqualValues(t, 2, n)
	require.NoError(t, conn.Exec(ctx, "INSERT INTO `"+db+"`.t (id) VALUES (1)"))
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(n) FROM `"+db+"`.t_count").Scan(&n))
	require.EqualValues(t, 1, n, "the view exists once")
}

func TestApplyRefusesAnEditedMigration(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	db := testenv.Name(t, "mig")
	dropDatabase(t, conn, db)
	migs, err := chmigrate.Load(testMigrations)
	require.NoError(t, err)
	_, err = chmigrate.Apply(ctx, conn, db, migs, zap.NewNop())
	require.NoError(t, err)

	edited := fstest.MapFS{}
	for k, v := range testMigrations {
		edited[k] = v
	}
	edited["0002_view.sql"] = &fstest.MapFile{Data: []byte("CREATE VIEW IF NOT EXISTS {db}.other AS SELECT 1;\n")}
	migs, err = chmigrate.Load(edited)
	require.NoError(t, err)
	_, err = chmigrate.Apply(ctx, conn, db, migs, zap.NewNop())
	require.ErrorIs(t, err, chmigrate.ErrChecksumMismatch)
}
