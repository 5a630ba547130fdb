package conformance

// Throughput of the server against chDB alone:
//
//	go test ./internal/conformance -run '^$' -bench . -benchtime 5x
//
// Insert: batches of 100 000 rows of a detections-like table, with clickhouse-go through the
// server, and as the same Native data loaded by chDB directly (INSERT ... FROM INFILE).
// Query: 1 000 000 rows read and scanned with clickhouse-go through the server, and streamed
// by chDB directly (Native chunks, not decoded); server-no-scan leaves out clickhouse-go's Scan.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// benchBatch is the rows of one insert batch: CHSERVER_BENCH_ROWS, 100 000 by default.
var benchBatch = func() int {
	if n, err := strconv.Atoi(os.Getenv("CHSERVER_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}()

const benchTable = `(event_id UUID, observed_at DateTime64(3, 'UTC'), sensor_id LowCardinality(String),
	kind LowCardinality(String), rssi_dbm Nullable(Int16), imei_pseudonym String, tac FixedString(8), freq_mhz Float64)
	ENGINE = MergeTree ORDER BY (sensor_id, observed_at)`

const benchColumns = "event_id, observed_at, sensor_id, kind, rssi_dbm, imei_pseudonym, tac, freq_mhz"

// benchAddr is the server the benchmarks use: CHSERVER_BENCH_ADDR (a server started with
// clickhouse.sh, to measure its memory from outside) or the one of this test binary.
func benchAddr() string {
	if a := os.Getenv("CHSERVER_BENCH_ADDR"); a != "" {
		return a
	}
	return chserverAddr
}

type benchRow struct {
	id   uuid.UUID
	at   time.Time
	sid  string
	kind string
	rssi *int16
	imei string
	tac  string
	freq float64
}

func benchRows(n int) []benchRow {
	rows := make([]benchRow, n)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	kinds := []string{"mas_attach", "call_attempt", "sms_attempt", "data_attempt"}
	for i := range rows {
		rssi := int16(-50 - i%60)
		rows[i] = benchRow{
			id: uuid.New(), at: base.Add(time.Duration(i) * time.Millisecond), sid: fmt.Sprintf("sensor-%03d", i%200),
			kind: kinds[i%4], rssi: &rssi, imei: fmt.Sprintf("p1:%058x", i), tac: fmt.Sprintf("%08d", 35000000+i%500),
			freq: 900 + float64(i%100)/10,
		}
		if i%7 == 0 {
			rows[i].rssi = nil
		}
	}
	return rows
}

func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	conn := open(b, benchAddr(), withCompression(clickhouse.CompressionLZ4))
	db := newDatabase(b, conn)
	rows := benchRows(benchBatch)

	b.Run("server", func(b *testing.B) {
		require.NoError(b, conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+".via_server "+benchTable))
		b.ResetTimer()
		for range b.N {
			batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".via_server ("+benchColumns+")")
			require.NoError(b, err)
			for _, r := range rows {
				if err := batch.Append(r.id, r.at, r.sid, r.kind, r.rssi, r.imei, r.tac, r.freq); err != nil {
					b.Fatal(err)
				}
			}
			require.NoError(b, batch.Send())
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	})

	b.Run("chdb", func(b *testing.B) {
		if os.Getenv("CHSERVER_BENCH_ADDR") != "" {
			b.Skip("chDB alone runs in this process only")
		}
		// The same rows as Native data, made once by the engine from the server's table.
		s, err := testEngine.Acquire(ctx)
		require.NoError(b, err)
		defer s.Release()
		native, err := s.Exec("SELECT " + benchColumns + " FROM " + db + ".via_server LIMIT " + fmt.Sprint(benchBatch))
		require.NoError(b, err)
		file := filepath.Join(b.TempDir(), "batch.native")
		require.NoError(b, os.WriteFile(file, native, 0o644))
		_, err = s.Exec("CREATE TABLE IF NOT EXISTS " + db + ".direct " + benchTable)
		require.NoError(b, err)
		b.ResetTimer()
		for range b.N {
			if _, err := s.Exec("INSERT INTO " + db + ".direct (" + benchColumns + ") FROM INFILE '" + file + "' FORMAT Native"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
	})
}

func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	const n = 1_000_000
	conn := open(b, benchAddr(), withCompression(clickhouse.CompressionLZ4))
	db := newDatabase(b, conn)
	require.NoError(b, conn.Exec(ctx, "CREATE TABLE "+db+".q "+benchTable))
	require.NoError(b, conn.Exec(ctx, "INSERT INTO "+db+".q ("+benchColumns+") SELECT generateUUIDv4(), "+
		"toDateTime64('2026-03-01 00:00:00', 3, 'UTC') + number / 1000, concat('sensor-', toString(number % 200)), "+
		"['mas_attach', 'call_attempt', 'sms_attempt', 'data_attempt'][number % 4 + 1], if(number % 7 = 0, NULL, -50 - number % 60), "+
		"concat('p1:', hex(number)), toFixedString(toString(35000000 + number % 500), 8), 900 + (number % 100) / 10 FROM numbers("+fmt.Sprint(n)+")"))
	query := "SELECT " + benchColumns + " FROM " + db + ".q"

	b.Run("server", func(b *testing.B) {
		for range b.N {
			rows, err := conn.Query(ctx, query)
			require.NoError(b, err)
			var r benchRow
			count := 0
			for rows.Next() {
				if err := rows.Scan(&r.id, &r.at, &r.sid, &r.kind, &r.rssi, &r.imei, &r.tac, &r.freq); err != nil {
					b.Fatal(err)
				}
				count++
			}
			require.NoError(b, rows.Err())
			require.Equal(b, n, count)
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
	})

	// The same, without Scan: what the client spends converting values is left out.
	b.Run("server-no-scan", func(b *testing.B) {
		for range b.N {
			rows, err := conn.Query(ctx, query)
			require.NoError(b, err)
			count := 0
			for rows.Next() {
				count++
			}
			require.NoError(b, rows.Err())
			require.Equal(b, n, count)
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
	})

	b.Run("chdb", func(b *testing.B) {
		if os.Getenv("CHSERVER_BENCH_ADDR") != "" {
			b.Skip("chDB alone runs in this process only")
		}
		for range b.N {
			s, err := testEngine.Acquire(ctx)
			require.NoError(b, err)
			st, err := s.Stream(query, chdb.NativeFormat)
			require.NoError(b, err)
			bytes := 0
			for {
				c, err := st.Next()
				require.NoError(b, err)
				if c == nil {
					break
				}
				bytes += len(c)
			}
			st.Close()
			s.Release()
			require.Positive(b, bytes)
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
	})
}
