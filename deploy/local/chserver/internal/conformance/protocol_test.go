package conformance

// The protocol-level subset: statements and types that ClickHouse 18.16 supports too, over the
// native protocol with explicit column lists. Each test runs against both servers.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// protocolRow holds one row of the columns both servers support.
type protocolRow struct {
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	F32 float32
	F64 float64
	S   string
	FS  string
	ID  uuid.UUID
	NS  *string
	Arr []string
	AU  []uint32
	E   string
	D   time.Time
	DT  time.Time
	LC  string
}

const protocolColumns = `u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, i8 Int8, i16 Int16, i32 Int32, i64 Int64,
	f32 Float32, f64 Float64, s String, fs FixedString(4), id UUID, ns Nullable(String), arr Array(String),
	au Array(UInt32), e Enum8('a' = 1, 'b' = 2), d Date, dt DateTime, lc LowCardinality(String)`

const protocolNames = "u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, s, fs, id, ns, arr, au, e, d, dt, lc"

func makeProtocolRow(i int) protocolRow {
	var ns *string
	if i%3 != 0 {
		v := fmt.Sprintf("n%d", i)
		ns = &v
	}
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	return protocolRow{
		U8: uint8(i), U16: uint16(i * 7), U32: uint32(i * 1000), U64: uint64(i) << 40,
		I8: int8(-i % 100), I16: int16(-i * 3), I32: int32(-i * 1000), I64: -int64(i) << 40,
		F32: float32(i) / 4, F64: float64(i) / 3,
		S: fmt.Sprintf("row %d\nwith a blank line\n\nand more", i), FS: fmt.Sprintf("%04d", i%10000),
		ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))), NS: ns,
		Arr: []string{fmt.Sprint(i), "", "x"}[:i%4%3], AU: []uint32{uint32(i), uint32(i + 1)},
		E: []string{"a", "b"}[i%2], D: base.AddDate(0, 0, i%30), DT: base.Add(time.Duration(i) * time.Second),
		LC: []string{"mas_attach", "call_attempt", "sms_attempt"}[i%3],
	}
}

func TestProtocolTypesRoundTrip(t *testing.T) {
	methods := []struct {
		name string
		opt  connOption
	}{
		{"none", func(*clickhouse.Options) {}},
		{"lz4", withCompression(clickhouse.CompressionLZ4)},
		{"zstd", withCompression(clickhouse.CompressionZSTD)},
	}
	for _, srv := range bothServers() {
		for _, m := range methods {
			t.Run(srv.name+"/"+m.name, func(t *testing.T) {
				ctx := context.Background()
				conn := open(t, srv.addr, m.opt)
				db := newDatabase(t, conn)
				require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".types ("+protocolColumns+") ENGINE = MergeTree ORDER BY u64"))
				const n = 2000
				batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".types ("+protocolNames+")")
				require.NoError(t, err)
				for i := range n {
					r := makeProtocolRow(i)
					require.NoError(t, batch.Append(r.U8, r.U16, r.U32, r.U64, r.I8, r.I16, r.I32, r.I64, r.F32, r.F64,
						r.S, r.FS, r.ID, r.NS, r.Arr, r.AU, r.E, r.D, r.DT, r.LC))
				}
				require.NoError(t, batch.Send())

				rows, err := conn.Query(ctx, "SELECT "+protocolNames+" FROM "+db+".types ORDER BY u64")
				require.NoError(t, err)
				i := 0
				for rows.Next() {
					var r protocolRow
					require.NoError(t, rows.Scan(&r.U8, &r.U16, &r.U32, &r.U64, &r.I8, &r.I16, &r.I32, &r.I64, &r.F32, &r.F64,
						&r.S, &r.FS, &r.ID, &r.NS, &r.Arr, &r.AU, &r.E, &r.D, &r.DT, &r.LC))
					want := makeProtocolRow(i)
					r.D, r.DT = r.D.UTC(), r.DT.UTC()
					if len(want.Arr) == 0 {
						want.Arr = r.Arr[:0]
					}
					require.Equal(t, want, r, "row %d", i)
					i++
				}
				require.NoError(t, rows.Err())
				require.Equal(t, n, i)
			})
		}
	}
}

func TestProtocolErrorsKeepConnectionUsable(t *testing.T) {
	for _, srv := range bothServers() {
		t.Run(srv.name, func(t *testing.T) {
			ctx := context.Background()
			conn := open(t, srv.addr, withPool(1)) // one connection: every query below shares it
			db := newDatabase(t, conn)
			cases := []struct {
				name  string
				query string
				code  int32
			}{
				{"unknown table", "SELECT * FROM " + db + ".missing", 60},
				{"syntax error", "SELEC 1", 62},
				{"unknown function", "SELECT no_such_function(1)", 46},
				{"unknown column", "SELECT no_such_column FROM system.one", 47},
				{"division of strings", "SELECT 'a' / 'b'", 43},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					require.Equal(t, c.code, exceptionCode(t, conn.Exec(ctx, c.query)))
					var one uint8
					require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
					require.Equal(t, uint8(1), one)
				})
			}
			t.Run("insert into missing table", func(t *testing.T) {
				_, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".missing (a)")
				require.Equal(t, int32(60), exceptionCode(t, err))
				var one uint8
				require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
			})
			t.Run("insert of an unknown column", func(t *testing.T) {
				require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".t (a UInt32) ENGINE = MergeTree ORDER BY a"))
				_, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (a, nope)")
				require.Equal(t, int32(16), exceptionCode(t, err))
				var one uint8
				require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
			})
		})
	}
}

func TestProtocolEmptyResultHasColumns(t *testing.T) {
	for _, srv := range bothServers() {
		t.Run(srv.name, func(t *testing.T) {
			ctx := context.Background()
			conn := open(t, srv.addr)
			rows, err := conn.Query(ctx, "SELECT number AS n, toString(number) AS s FROM system.numbers LIMIT 0")
			require.NoError(t, err)
			require.Equal(t, []string{"n", "s"}, rows.Columns())
			require.False(t, rows.Next())
			require.NoError(t, rows.Err())
			types := rows.ColumnTypes()
			require.Equal(t, "UInt64", types[0].DatabaseTypeName())
			require.Equal(t, "String", types[1].DatabaseTypeName())
		})
	}
}

func TestProtocolQuerySettings(t *testing.T) {
	for _, srv := range bothServers() {
		t.Run(srv.name, func(t *testing.T) {
			ctx := context.Background()
			conn := open(t, srv.addr, withPool(1))
			const q = "SELECT value FROM system.settings WHERE name = 'max_threads'"
			var def string
			require.NoError(t, conn.QueryRow(ctx, q).Scan(&def))
			var got string
			require.NoError(t, conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 3})), q).Scan(&got))
			require.Contains(t, got, "3")
			require.NoError(t, conn.QueryRow(ctx, q).Scan(&got))
			require.Equal(t, def, got, "a query's settings must not outlive it")
			// A per-query limit applies to that query only.
			err := conn.Exec(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": 10, "result_overflow_mode": 0})),
				"SELECT number FROM system.numbers LIMIT 100")
			require.Error(t, err)
			var n uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 100)").Scan(&n))
			require.Equal(t, uint64(100), n)
		})
	}
}

func TestProtocolConcurrentConnections(t *testing.T) {
	for _, srv := range bothServers() {
		t.Run(srv.name, func(t *testing.T) {
			ctx := context.Background()
			conn := open(t, srv.addr, withPool(8))
			db := newDatabase(t, conn)
			require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".c (w UInt32, i UInt32) ENGINE = MergeTree ORDER BY (w, i)"))
			const workers, batches, perBatch = 8, 5, 500
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := range batches {
						batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".c (w, i)")
						if err != nil {
							errs <- err
							return
						}
						for i := range perBatch {
							if err := batch.Append(uint32(w), uint32(b*perBatch+i)); err != nil {
								errs <- err
								return
							}
						}
						if err := batch.Send(); err != nil {
							errs <- err
							return
						}
						var n uint64
						if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.c WHERE w = %d", db, w)).Scan(&n); err != nil {
							errs <- err
							return
						}
						if n != uint64((b+1)*perBatch) {
							errs <- fmt.Errorf("worker %d sees %d rows after batch %d", w, n, b)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			var n uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".c").Scan(&n))
			require.Equal(t, uint64(workers*batches*perBatch), n)
		})
	}
}
