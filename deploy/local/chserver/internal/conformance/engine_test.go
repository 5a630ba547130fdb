package conformance

// Tests of what only a modern engine has (chserver on chDB): the column types, tables and
// statements Vigie's schema uses, deduplication, streaming, cancel, settings isolation.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

func TestVigieTypesRoundTrip(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr, withCompression(clickhouse.CompressionLZ4))
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, `CREATE TABLE `+db+`.detections (
		event_id UUID,
		observed_at DateTime64(3, 'UTC'),
		kind LowCardinality(String),
		rat Enum8('2G' = 1, '3G' = 2, '4G' = 3, '5G' = 4),
		tac FixedString(8),
		operator LowCardinality(Nullable(String)),
		rssi_dbm Nullable(Int16),
		freq_mhz Float64,
		evidence Array(String),
		tags Array(LowCardinality(String)),
		attrs Map(String, UInt64),
		pos Tuple(Float64, Float64),
		judicial_hold Bool,
		count UInt32
	) ENGINE = MergeTree PARTITION BY toYYYYMM(observed_at) ORDER BY (kind, observed_at)`))

	type row struct {
		ID       uuid.UUID
		At       time.Time
		Kind     string
		RAT      string
		TAC      string
		Operator *string
		RSSI     *int16
		Freq     float64
		Evidence []string
		Tags     []string
		Attrs    map[string]uint64
		Pos      []any
		Hold     bool
		Count    uint32
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	mk := func(i int) row {
		r := row{
			ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprint(i))), At: base.Add(time.Duration(i) * time.Millisecond),
			Kind: []string{"mas_attach", "call_attempt"}[i%2], RAT: []string{"2G", "3G", "4G", "5G"}[i%4],
			TAC: fmt.Sprintf("%08d", 35000000+i%100), Freq: 900.2 + float64(i),
			Evidence: []string{fmt.Sprint(i)}, Tags: []string{"a", "b"}[:i%3%2+1],
			Attrs: map[string]uint64{"n": uint64(i)}, Pos: []any{float64(i), -float64(i)}, Hold: i%5 == 0, Count: uint32(i),
		}
		if i%2 == 0 {
			op, rssi := "20801", int16(-60-i%40)
			r.Operator, r.RSSI = &op, &rssi
		}
		return r
	}
	const n = 5000
	const cols = "event_id, observed_at, kind, rat, tac, operator, rssi_dbm, freq_mhz, evidence, tags, attrs, pos, judicial_hold, count"
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".detections ("+cols+")")
	require.NoError(t, err)
	for i := range n {
		r := mk(i)
		require.NoError(t, batch.Append(r.ID, r.At, r.Kind, r.RAT, r.TAC, r.Operator, r.RSSI, r.Freq, r.Evidence, r.Tags, r.Attrs, r.Pos, r.Hold, r.Count))
	}
	require.NoError(t, batch.Send())

	rows, err := conn.Query(ctx, "SELECT "+cols+" FROM "+db+".detections ORDER BY count")
	require.NoError(t, err)
	i := 0
	for rows.Next() {
		var r row
		var pos []any
		require.NoError(t, rows.Scan(&r.ID, &r.At, &r.Kind, &r.RAT, &r.TAC, &r.Operator, &r.RSSI, &r.Freq, &r.Evidence, &r.Tags, &r.Attrs, &pos, &r.Hold, &r.Count))
		r.Pos = pos
		want := mk(i)
		require.True(t, want.At.Equal(r.At), "row %d: time %v != %v", i, r.At, want.At)
		r.At = want.At
		require.Equal(t, want, r, "row %d", i)
		i++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, n, i)
}

func TestInsertWithoutColumnList(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".t (a UInt32, b String, c UInt64 MATERIALIZED a * 2, d String DEFAULT 'dflt') ENGINE = MergeTree ORDER BY a"))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t")
	require.NoError(t, err)
	require.NoError(t, batch.Append(uint32(7), "x", "y"))
	require.NoError(t, batch.Send())
	// A column list in another order, quoted names, and defaults for the columns left out.
	batch, err = conn.PrepareBatch(ctx, "INSERT INTO `"+db+"`.`t` (`b`, a)")
	require.NoError(t, err)
	require.NoError(t, batch.Append("z", uint32(8)))
	require.NoError(t, batch.Send())
	var got []struct {
		A uint32 `ch:"a"`
		B string `ch:"b"`
		C uint64 `ch:"c"`
		D string `ch:"d"`
	}
	require.NoError(t, conn.Select(ctx, &got, "SELECT a, b, c, d FROM "+db+".t ORDER BY a"))
	require.Len(t, got, 2)
	require.Equal(t, uint32(7), got[0].A)
	require.Equal(t, "y", got[0].D)
	require.Equal(t, uint64(14), got[0].C)
	require.Equal(t, "z", got[1].B)
	require.Equal(t, "dflt", got[1].D)
}

func TestAggregateStatesAndMaterializedViews(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	db := newDatabase(t, conn)
	for _, q := range []string{
		"CREATE TABLE " + db + ".raw (ts DateTime64(3, 'UTC'), facility LowCardinality(String), device String) ENGINE = MergeTree ORDER BY ts",
		"CREATE TABLE " + db + ".per_minute (minute DateTime, facility LowCardinality(String), events AggregateFunction(count), devices AggregateFunction(uniq, String)) ENGINE = AggregatingMergeTree ORDER BY (facility, minute)",
		"CREATE MATERIALIZED VIEW " + db + ".per_minute_mv TO " + db + ".per_minute AS SELECT toStartOfMinute(ts) AS minute, facility, countState() AS events, uniqState(device) AS devices FROM " + db + ".raw GROUP BY minute, facility",
		"CREATE TABLE " + db + ".per_day (day Date, facility LowCardinality(String), events UInt64) ENGINE = SummingMergeTree ORDER BY (facility, day)",
		"CREATE MATERIALIZED VIEW " + db + ".per_day_mv TO " + db + ".per_day AS SELECT toDate(ts) AS day, facility, count() AS events FROM " + db + ".raw GROUP BY day, facility",
	} {
		require.NoError(t, conn.Exec(ctx, q), q)
	}
	base := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	for b := range 3 {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".raw (ts, facility, device)")
		require.NoError(t, err)
		for i := range 100 {
			require.NoError(t, batch.Append(base.Add(time.Duration(b*100+i)*time.Second), []string{"fresnes", "fleury"}[i%2], fmt.Sprintf("dev%d", i%7)))
		}
		require.NoError(t, batch.Send())
	}
	var events, devices uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT countMerge(events), uniqMerge(devices) FROM "+db+".per_minute WHERE facility = 'fresnes'").Scan(&events, &devices))
	require.Equal(t, uint64(150), events)
	require.Equal(t, uint64(7), devices, "odd i only: dev1, dev3, dev5, dev0, dev2, dev4, dev6 over the batches")
	var perDay uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT sum(events) FROM "+db+".per_day").Scan(&perDay))
	require.Equal(t, uint64(300), perDay)
	// The aggregate state itself crosses the wire too (as opaque bytes in one block).
	rows, err := conn.Query(ctx, "SELECT minute, finalizeAggregation(devices) FROM "+db+".per_minute ORDER BY minute LIMIT 1")
	require.NoError(t, err)
	require.True(t, rows.Next())
	require.NoError(t, rows.Close())
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".d (observed_at DateTime64(3, 'UTC'), judicial_hold Bool, id UInt32) "+
		"ENGINE = MergeTree ORDER BY id TTL toDateTime(observed_at) + INTERVAL 90 DAY DELETE WHERE NOT judicial_hold"))
	now := time.Now().UTC()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".d (observed_at, judicial_hold, id)")
	require.NoError(t, err)
	require.NoError(t, batch.Append(now.AddDate(0, 0, -100), false, uint32(1))) // expired
	require.NoError(t, batch.Append(now.AddDate(0, 0, -100), true, uint32(2)))  // held
	require.NoError(t, batch.Append(now.AddDate(0, 0, -10), false, uint32(3)))  // recent
	require.NoError(t, batch.Send())
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE "+db+".d FINAL"))
	var ids []uint32
	rows, err := conn.Query(ctx, "SELECT id FROM "+db+".d ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var id uint32
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []uint32{2, 3}, ids)
}

func TestWindowFunctions(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	type r struct {
		N    uint64 `ch:"n"`
		Sum  uint64 `ch:"running"`
		Rank uint64 `ch:"rnk"`
		Prev uint64 `ch:"prev"`
	}
	var got []r
	require.NoError(t, conn.Select(ctx, &got, `SELECT number AS n,
		sum(number) OVER (ORDER BY number ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
		rank() OVER (PARTITION BY number % 2 ORDER BY number) AS rnk,
		lagInFrame(number, 1, 0) OVER (ORDER BY number ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev
		FROM numbers(6) ORDER BY n`))
	require.Equal(t, []r{{0, 0, 1, 0}, {1, 1, 1, 0}, {2, 3, 2, 1}, {3, 6, 2, 2}, {4, 10, 3, 3}, {5, 15, 3, 4}}, got)
}

func TestDeduplicationTokensThroughMaterializedViews(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr)
	db := newDatabase(t, conn)
	for _, q := range []string{
		"CREATE TABLE " + db + ".raw (id UInt64, facility String) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100",
		"CREATE TABLE " + db + ".agg (facility String, n UInt64) ENGINE = SummingMergeTree ORDER BY facility SETTINGS non_replicated_deduplication_window = 100",
		"CREATE MATERIALIZED VIEW " + db + ".agg_mv TO " + db + ".agg AS SELECT facility, count() AS n FROM " + db + ".raw GROUP BY facility",
	} {
		require.NoError(t, conn.Exec(ctx, q), q)
	}
	insert := func(token string, from int) {
		t.Helper()
		qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
			"insert_deduplication_token":                         token,
			"deduplicate_blocks_in_dependent_materialized_views": 1,
		}))
		batch, err := conn.PrepareBatch(qctx, "INSERT INTO "+db+".raw (id, facility)")
		require.NoError(t, err)
		for i := from; i < from+10; i++ {
			require.NoError(t, batch.Append(uint64(i), "fresnes"))
		}
		require.NoError(t, batch.Send())
	}
	counts := func() (raw, agg uint64) {
		t.Helper()
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".raw").Scan(&raw))
		require.NoError(t, conn.QueryRow(ctx, "SELECT sum(n) FROM "+db+".agg").Scan(&agg))
		return raw, agg
	}
	insert("writer-p0-o0", 0)
	insert("writer-p0-o0", 0) // a retried batch: dropped in the table and in the view's target
	raw, agg := counts()
	require.Equal(t, uint64(10), raw)
	require.Equal(t, uint64(10), agg)
	insert("writer-p0-o10", 10) // new token, new rows
	raw, agg = counts()
	require.Equal(t, uint64(20), raw)
	require.Equal(t, uint64(20), agg)
}

func TestSettingsIsolation(t *testing.T) {
	ctx := context.Background()
	a := open(t, chserverAddr, withPool(1))
	b := open(t, chserverAddr, withPool(1))
	const q = "SELECT toString(getSetting('max_block_size'))"
	var def, v string
	require.NoError(t, a.QueryRow(ctx, q).Scan(&def))
	// A string-valued per-query setting, then none: the first must not leak.
	require.NoError(t, a.QueryRow(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": "1234"})), q).Scan(&v))
	require.Equal(t, "1234", v)
	require.NoError(t, a.QueryRow(ctx, q).Scan(&v))
	require.Equal(t, def, v)
	// SET is this connection's own: it holds for its next queries, and not for another connection.
	require.NoError(t, a.Exec(ctx, "SET max_block_size = 4321"))
	require.NoError(t, a.QueryRow(ctx, q).Scan(&v))
	require.Equal(t, "4321", v)
	require.NoError(t, b.QueryRow(ctx, q).Scan(&v))
	require.Equal(t, def, v)
	// Settings of a DDL statement do not outlive it either.
	require.NoError(t, b.Exec(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 999})), "CREATE TEMPORARY TABLE IF NOT EXISTS tmp_x (a UInt8)"))
	require.NoError(t, b.QueryRow(ctx, q).Scan(&v))
	require.Equal(t, def, v)
	// An empty result of a query with settings still has its columns.
	rows, err := b.Query(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 2})), "SELECT number AS n FROM numbers(10) WHERE n > 100")
	require.NoError(t, err)
	require.Equal(t, []string{"n"}, rows.Columns())
	require.False(t, rows.Next())
	require.NoError(t, rows.Close())
	// A client FORMAT clause does not change the wire format.
	var one uint8
	require.NoError(t, b.QueryRow(ctx, "SELECT 1 FORMAT JSONEachRow").Scan(&one))
	require.Equal(t, uint8(1), one)
	require.NoError(t, b.QueryRow(ctx, "SELECT 1 SETTINGS max_threads = 1 FORMAT TSV;").Scan(&one))
}

func TestDatabasePerConnection(t *testing.T) {
	ctx := context.Background()
	admin := open(t, chserverAddr)
	db1, db2 := newDatabase(t, admin), newDatabase(t, admin)
	require.NoError(t, admin.Exec(ctx, "CREATE TABLE "+db1+".t (v String) ENGINE = Memory"))
	require.NoError(t, admin.Exec(ctx, "CREATE TABLE "+db2+".t (v String) ENGINE = Memory"))
	require.NoError(t, admin.Exec(ctx, "INSERT INTO "+db1+".t SELECT 'one'"))
	require.NoError(t, admin.Exec(ctx, "INSERT INTO "+db2+".t SELECT 'two'"))
	c1 := open(t, chserverAddr, withDatabase(db1))
	c2 := open(t, chserverAddr, withDatabase(db2))
	for range 3 {
		var v string
		require.NoError(t, c1.QueryRow(ctx, "SELECT v FROM t").Scan(&v))
		require.Equal(t, "one", v)
		require.NoError(t, c2.QueryRow(ctx, "SELECT v FROM t").Scan(&v))
		require.Equal(t, "two", v)
	}
	_, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Database: "no_such_db", Username: adminUser, Password: adminPassword}})
	require.NoError(t, err)
	bad, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Database: "no_such_db", Username: adminUser, Password: adminPassword}})
	defer bad.Close()
	require.Equal(t, int32(81), exceptionCode(t, bad.Ping(ctx)))
}

// A hello does not wait for an engine busy with a long statement (the client would time out):
// it is answered, and the unknown database, if any, is reported by the first query.
func TestHandshakeWhileEngineBusy(t *testing.T) {
	ctx := context.Background()
	db := newDatabase(t, open(t, chserverAddr))
	// Every session of the engine is taken: the engine is as busy as it gets.
	var sessions []*chdb.Session
	for range testEngine.Size() {
		sess, err := testEngine.Acquire(ctx)
		require.NoError(t, err)
		sessions = append(sessions, sess)
	}
	released := false
	release := func() {
		if !released {
			released = true
			for _, sess := range sessions {
				sess.Release()
			}
		}
	}
	defer release()
	for _, name := range []string{db, "no_such_db"} {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Database: name, Username: adminUser, Password: adminPassword},
			DialTimeout: 3 * time.Second})
		require.NoError(t, err)
		defer conn.Close()
		start := time.Now()
		require.NoError(t, conn.Ping(ctx), name)
		require.Less(t, time.Since(start), 3*time.Second)
		if name == db {
			continue
		}
		release()
		require.Equal(t, int32(81), exceptionCode(t, conn.Exec(ctx, "SELECT 1")))
	}
}

func TestAuthentication(t *testing.T) {
	ctx := context.Background()
	good := open(t, chserverAddr, withAuth("vigie", "s3cret"))
	var user string
	require.NoError(t, good.QueryRow(ctx, "SELECT 'ok'").Scan(&user))
	for _, c := range []struct{ user, password string }{{"vigie", "wrong"}, {"nobody", ""}} {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Username: c.user, Password: c.password}})
		require.NoError(t, err)
		require.Equal(t, int32(516), exceptionCode(t, conn.Ping(ctx)))
		_ = conn.Close()
	}
}

func TestErrorMidInsertKeepsConnectionUsable(t *testing.T) {
	ctx := context.Background()
	conn := open(t, chserverAddr, withPool(1))
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".t (a UInt32, CONSTRAINT small CHECK a < 100) ENGINE = MergeTree ORDER BY a"))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (a)")
	require.NoError(t, err)
	for i := range 200 {
		require.NoError(t, batch.Append(uint32(i)))
	}
	require.Equal(t, int32(469), exceptionCode(t, batch.Send())) // VIOLATED_CONSTRAINT
	batch, err = conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (a)")
	require.NoError(t, err)
	require.NoError(t, batch.Append(uint32(5)))
	require.NoError(t, batch.Send())
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".t").Scan(&n))
	require.Equal(t, uint64(1), n)
}

func TestBigResultStreams(t *testing.T) {
	ctx := context.Background()
	for _, m := range []clickhouse.CompressionMethod{clickhouse.CompressionNone, clickhouse.CompressionLZ4} {
		t.Run(m.String(), func(t *testing.T) {
			conn := open(t, chserverAddr, withCompression(m))
			rows, err := conn.Query(ctx, "SELECT number, toString(number) FROM numbers(1000000)")
			require.NoError(t, err)
			var n, sum uint64
			for rows.Next() {
				var v uint64
				var s string
				require.NoError(t, rows.Scan(&v, &s))
				sum += v
				n++
			}
			require.NoError(t, rows.Err())
			require.Equal(t, uint64(1_000_000), n)
			require.Equal(t, uint64(999_999*1_000_000/2), sum)
		})
	}
}

func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	ctx := context.Background()
	slow := open(t, chserverAddr, withPool(1))
	// A big result read one row, then left waiting: the engine must stay free for others.
	rows, err := slow.Query(ctx, "SELECT number, repeat('x', 100) FROM numbers(2000000)")
	require.NoError(t, err)
	require.True(t, rows.Next())
	other := open(t, chserverAddr, withPool(1))
	done := make(chan error, 1)
	go func() {
		var n uint64
		done <- other.QueryRow(ctx, "SELECT count() FROM numbers(10)").Scan(&n)
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("a query waited for a slow reader's result")
	}
	require.NoError(t, rows.Close())
}

func TestCancelDoesNotWedgeServer(t *testing.T) {
	ctx := context.Background()
	for range 3 {
		conn := open(t, chserverAddr, withPool(1))
		qctx, cancel := context.WithCancel(ctx)
		rows, err := conn.Query(qctx, "SELECT number, toString(number) FROM numbers(10000000)")
		require.NoError(t, err)
		require.True(t, rows.Next())
		cancel()
		for rows.Next() {
		}
		_ = rows.Close()
		// A long query cancelled by its deadline.
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err = conn.Exec(dctx, "SELECT sleepEachRow(0.3) FROM numbers(3)")
		dcancel()
		require.Error(t, err) // clickhouse-go reports the deadline as an i/o timeout
	}
	conn := open(t, chserverAddr)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM numbers(1000)").Scan(&n))
		}()
	}
	wg.Wait()
}

// clickhouse-go turns a context deadline into a max_execution_time setting: every kind of
// statement must accept it.
func TestContextDeadlineBecomesSetting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := open(t, chserverAddr)
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".t (a UInt32) ENGINE = MergeTree ORDER BY a"))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (a)")
	require.NoError(t, err)
	require.NoError(t, batch.Append(uint32(1)))
	require.NoError(t, batch.Send())
	require.NoError(t, conn.Exec(ctx, "INSERT INTO "+db+".t SELECT 2"))
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".t").Scan(&n))
	require.Equal(t, uint64(2), n)
	var v string
	require.NoError(t, conn.QueryRow(ctx, "SELECT toString(getSetting('max_execution_time'))").Scan(&v))
	require.NotEqual(t, "0", v)
}

func TestManyConnections(t *testing.T) {
	ctx := context.Background()
	const clients = 64
	// Every client holds its own connection, all open at once before any query.
	conns := make([]interface {
		QueryRow(context.Context, string, ...any) driver.Row
	}, clients)
	for i := range conns {
		conns[i] = open(t, chserverAddr, withPool(1))
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n uint64
			q := fmt.Sprintf("SELECT sum(number) FROM numbers(%d)", 1000+i)
			if i%8 == 0 {
				q = "SELECT count() FROM (SELECT number, toString(number) FROM numbers(300000))"
			}
			if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
