package conformance

// Access control: the roles of schemas/clickhouse/roles as the server enforces them (the
// engine's grants and profile, and the server's own checks, internal/server/policy.go), tried
// as a curious analyst, a service and an administrator would, over both interfaces.

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
)

var (
	vigieOnce sync.Once
	vigieOK   bool
)

// vigieDatabase creates, once per test binary, the database the roles name (suiteDatabase)
// with the schema of schemas/clickhouse and 4,000 detections, and returns its name.
func vigieDatabase(t *testing.T) string {
	t.Helper()
	vigieOnce.Do(func() {
		conn := open(t, chserverAddr)
		require.NoError(t, conn.Exec(context.Background(), "CREATE DATABASE IF NOT EXISTS "+suiteDatabase))
		applySchema(t, conn, suiteDatabase)
		require.NoError(t, conn.Exec(context.Background(), "INSERT INTO "+suiteDatabase+".detections (event_id, sensor_id, kind, observed_at, received_at, enriched_at, facility_id, tac) "+
			"SELECT toString(number), 's' || toString(number % 7), ['mas_attach', 'call_attempt', 'sms_attempt', 'drone_seen'][1 + number % 4], "+
			"now64(3) - toIntervalSecond(number * 37), now64(3), now64(3), 'FAC' || toString(number % 5), toString(35000000 + number % 11) FROM numbers(4000)"))
		vigieOK = true
	})
	require.True(t, vigieOK, "the suite's Vigie database could not be created (see the first test that asked for it)")
	return suiteDatabase
}

func asAnalyst() connOption { return withAuth(analystUser, analystPassword) }
func asWriter() connOption  { return withAuth(writerUser, writerPassword) }

// refused runs sql on conn and returns the ClickHouse code of its error.
func refused(t *testing.T, conn driver.Conn, sql string, args ...any) int32 {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		_ = rows.Close()
	}
	require.Error(t, err, "%s was not refused", sql)
	return exceptionCode(t, err)
}

// secretFile is a file like .state/secrets/pseudonym-keys.yaml, which no query may read.
func secretFile(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".state", "secrets")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "pseudonym-keys.yaml")
	require.NoError(t, os.WriteFile(path, []byte("keys:\n  - version: 1\n    key: not-to-be-read\n"), 0o600))
	return path
}

func TestAnalystReadsOnly(t *testing.T) {
	db := vigieDatabase(t)
	conn := open(t, chserverAddr, asAnalyst())
	ctx := context.Background()
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM detections").Scan(&n), "the analyst starts in the Vigie database")
	require.Equal(t, uint64(4000), n)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".alerts").Scan(&n))
	for _, sql := range []string{
		"INSERT INTO detections (event_id) VALUES ('x')",
		"INSERT INTO detections (event_id) SELECT 'x'",
		"CREATE TABLE t (a UInt8) ENGINE = Memory",
		"CREATE TEMPORARY TABLE t (a UInt8)",
		"DROP TABLE detections",
		"TRUNCATE TABLE alerts",
		"ALTER TABLE detections DELETE WHERE 1",
		"ALTER TABLE detections UPDATE judicial_hold = true WHERE 1",
		"OPTIMIZE TABLE alerts FINAL",
		"RENAME TABLE alerts TO alerts2",
		"SYSTEM DROP MARK CACHE",
		"KILL QUERY WHERE 1",
		"CREATE USER x IDENTIFIED BY 'y'",
		"GRANT ALL ON *.* TO analyst",
		"CHECK TABLE alerts",
	} {
		require.Contains(t, []int32{164, 497}, refused(t, conn, sql), sql)
	}
	// Nor writes over HTTP.
	status, body, err := httpQueryAs(ctx, analystUser, analystPassword, chserverHTTPAddr, "", "INSERT INTO detections (event_id) VALUES ('x')")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status, body)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM detections").Scan(&n))
	require.Equal(t, uint64(4000), n, "nothing was written")
}

func TestAnalystCannotRaiseLimits(t *testing.T) {
	vigieDatabase(t)
	conn := open(t, chserverAddr, asAnalyst(), withPool(1))
	ctx := context.Background()
	var maxTime float64
	var rows, readonly uint64
	const limits = "SELECT toFloat64(getSetting('max_execution_time')), toUInt64(getSetting('max_result_rows')), toUInt64(getSetting('readonly'))"
	require.NoError(t, conn.QueryRow(ctx, limits).Scan(&maxTime, &rows, &readonly))
	require.Equal(t, []any{120.0, uint64(1000000), uint64(2)}, []any{maxTime, rows, readonly}, "the profile of roles/analyst.sql")

	// The limits hold: a result of more than 1,000,000 rows fails (TOO_MANY_ROWS_OR_BYTES).
	require.Equal(t, int32(396), refused(t, conn, "SELECT number FROM numbers(2000000)"))
	// An analyst may lower a limit (a one-second query then times out)...
	start := time.Now()
	require.Equal(t, int32(159), refused(t, conn, "SELECT sleepEachRow(0.5) FROM numbers(10) SETTINGS max_execution_time = 1, max_block_size = 1"))
	require.Less(t, time.Since(start), 4*time.Second)
	// ...never raise or remove one: in the statement, a subquery, the query's settings, SET,
	// or the URL.
	for _, sql := range []string{
		"SELECT 1 SETTINGS max_execution_time = 1000",
		"SELECT 1 SETTINGS max_execution_time = 0",
		"SELECT number FROM numbers(10) SETTINGS max_result_rows = 0",
		"SELECT count() FROM (SELECT number FROM numbers(10) SETTINGS max_result_rows = 0)",
		"SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 1000)",
		"SELECT 1 SETTINGS result_overflow_mode = 'break'",
		"SELECT 1 SETTINGS max_memory_usage = 0",
		"SELECT 1 SETTINGS readonly = 0",
		"SET max_execution_time = 1000",
		"SET max_result_bytes = 0",
	} {
		require.Contains(t, []int32{452, 497}, refused(t, conn, sql), sql)
	}
	err := conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": 0})), "SELECT 1").Scan(new(uint8))
	require.Equal(t, int32(452), exceptionCode(t, err))
	for _, setting := range []string{"readonly", "profile"} {
		require.Contains(t, []int32{452, 497}, refused(t, conn, "SET "+setting+" = 'default'"), setting)
	}
	status, body, err := httpQueryAs(ctx, analystUser, analystPassword, chserverHTTPAddr, "max_execution_time=1000", "SELECT 1")
	require.NoError(t, err)
	require.NotEqual(t, http.StatusOK, status, body)
	require.Contains(t, body, "452")
	// After all these, the session still has its limits.
	require.NoError(t, conn.QueryRow(ctx, limits).Scan(&maxTime, &rows, &readonly))
	require.Equal(t, []any{120.0, uint64(1000000), uint64(2)}, []any{maxTime, rows, readonly})
}

func TestAnalystReachesNoFileURLOrServer(t *testing.T) {
	vigieDatabase(t)
	conn := open(t, chserverAddr, asAnalyst())
	secret := secretFile(t)
	for _, sql := range []string{
		"SELECT file('" + secret + "')",
		"SELECT * FROM file('" + secret + "', 'LineAsString')",
		"SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
		"SELECT * FROM urlCluster('default', 'http://127.0.0.1:1/', 'CSV', 'a String')",
		"SELECT * FROM remote('127.0.0.1:1', system.one)",
		"SELECT * FROM remoteSecure('127.0.0.1:1', 'vigie', 'detections')",
		"SELECT * FROM cluster('default', 'vigie', 'detections')",
		"SELECT * FROM clusterAllReplicas('default', 'vigie', 'detections')",
		"SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')",
		"SELECT * FROM s3Cluster('default', 'http://127.0.0.1:1/b/k.csv')",
		"SELECT * FROM gcs('http://127.0.0.1:1/b/k.csv')",
		"SELECT * FROM hdfs('hdfs://127.0.0.1:1/k', 'CSV', 'a String')",
		"SELECT * FROM azureBlobStorage('http://127.0.0.1:1', 'c', 'k')",
		"SELECT * FROM executable('ls', 'LineAsString', 'a String')",
		"SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')",
		"SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')",
		"SELECT * FROM jdbc('jdbc:x', 't')",
		"SELECT * FROM odbc('dsn', 't')",
		"SELECT * FROM mongodb('127.0.0.1:1', 'd', 'c', 'u', 'p', 'a String')",
		"SELECT * FROM sqlite('" + secret + "', 't')",
		"SELECT * FROM redis('127.0.0.1:1', 'k', 'k String')",
		"SELECT * FROM input('a String')",
		"SELECT * FROM fileCluster('default', '" + secret + "')",
		"SELECT * FROM iceberg('http://127.0.0.1:1/t')",
		"SELECT * FROM deltaLake('http://127.0.0.1:1/t')",
		"SELECT * FROM hudi('http://127.0.0.1:1/t')",
		"SELECT * FROM merge('system', '^processes$')",
		"SELECT * FROM loop('system', 'one') LIMIT 1",
		"SELECT * FROM dictionary('d')",
		"SELECT * FROM viewIfPermitted(SELECT 1 ELSE null('a UInt8'))",
		"SELECT * FROM detections INTO OUTFILE '/tmp/chserver-out.tsv'",
		"SELECT 1 SETTINGS format_schema = '" + secret + "'",
		"SELECT 1 FORMAT Template SETTINGS format_template_row = '" + secret + "'",
		// What the server's lexer must read as ClickHouse does, not as a string or comment:
		"SELECT “file”('" + secret + "')",
		"SELECT `file`('" + secret + "')",
		"SELECT ‘x'’, file('" + secret + "') --'",
		"SELECT $$'$$, file('" + secret + "') --'",
		"SELECT 1 /* /* */ ' */ , file('" + secret + "') --'",
		"SELECT 1 // '\n, file('" + secret + "') --'",
		"SELECT file\u00a0('" + secret + "')",
	} {
		require.Contains(t, []int32{497, 62, 164}, refused(t, conn, sql), sql)
	}
	_, err := os.Stat("/tmp/chserver-out.tsv")
	require.True(t, os.IsNotExist(err), "INTO OUTFILE wrote a file")
	// Table functions that read only their arguments stay open.
	var n uint64
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count() FROM numbers(10) AS a JOIN view(SELECT number FROM numbers(3)) AS b USING number").Scan(&n))
	require.Equal(t, uint64(3), n)
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT sum(a) FROM values('a UInt64', 1, 2, 3)").Scan(&n))
	require.Equal(t, uint64(6), n)
}

// No user reads the server's files: not the administrator either.
func TestNoUserReadsFiles(t *testing.T) {
	db := vigieDatabase(t)
	secret := secretFile(t)
	for _, c := range []struct {
		name string
		conn driver.Conn
	}{{"admin", open(t, chserverAddr)}, {"writer", open(t, chserverAddr, asWriter())}} {
		for _, sql := range []string{
			"SELECT file('" + secret + "')",
			"SELECT * FROM file('" + secret + "', 'LineAsString')",
			"SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
			"SELECT * FROM executable('ls', 'LineAsString', 'a String')",
			"CREATE TABLE " + db + ".f (a String) ENGINE = File(LineAsString, '" + secret + "')",
			"CREATE TABLE " + db + ".u (a String) ENGINE = URL('http://127.0.0.1:1/', LineAsString)",
			"CREATE DICTIONARY " + db + ".d (a String) PRIMARY KEY a SOURCE(CLICKHOUSE(TABLE 'detections')) LAYOUT(FLAT()) LIFETIME(0)",
			"INSERT INTO " + db + ".facilities FROM INFILE '" + secret + "' FORMAT LineAsString",
			"SELECT 1 INTO OUTFILE '" + filepath.Dir(secret) + "/out'",
			"SELECT 1 SETTINGS output_format_schema = '" + filepath.Dir(secret) + "/schema'",
			"SELECT 1; SELECT 2",
			"SYSTEM SHUTDOWN",
		} {
			require.Contains(t, []int32{497, 62, 164}, refused(t, c.conn, sql), "%s: %s", c.name, sql)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(secret))
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing was written beside the secret")
}

func TestAnalystSeesNoOtherQueries(t *testing.T) {
	db := vigieDatabase(t)
	conn := open(t, chserverAddr, asAnalyst())
	ctx := context.Background()
	for _, sql := range []string{
		"SELECT query FROM system.processes",
		"SELECT query FROM system.query_log",
		"SELECT * FROM system.query_thread_log",
		"SELECT * FROM system.users",
		"SELECT * FROM system.settings_profiles",
		"SELECT * FROM system.zookeeper WHERE path = '/'",
		"SELECT query FROM “system”.“processes”",
		"SELECT query FROM `system`.processes",
		"SELECT query FROM \"system\" . /* */ processes",
		"SELECT query FROM SYSTEM.processes",
		"SELECT (SELECT any(query) FROM system.processes)",
		"SELECT * FROM view(SELECT query FROM system.processes)",
		"SHOW PROCESSLIST",
		"SHOW GRANTS",
		"SHOW USERS",
		"SHOW CREATE USER analyst",
		"SHOW ACCESS",
		"USE system",
		"SELECT 1; SET ROLE vigie_admin",
		"EXECUTE AS default SELECT 1",
	} {
		require.Contains(t, []int32{497, 62, 60, 164}, refused(t, conn, sql), sql)
	}
	// {db:Identifier}.{t:Identifier} are the names the checks read.
	pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"d": "system", "t": "processes"}))
	rows, err := conn.Query(pctx, "SELECT query FROM {d:Identifier}.{t:Identifier}")
	if err == nil {
		err = rows.Err()
	}
	require.Equal(t, int32(497), exceptionCode(t, err))
	// The analyst's connection never starts in the system database.
	_, err = clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Database: "system", Username: analystUser, Password: analystPassword}})
	require.NoError(t, err)
	sys, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{chserverAddr}, Auth: clickhouse.Auth{Database: "system", Username: analystUser, Password: analystPassword}})
	defer sys.Close()
	require.Equal(t, int32(497), exceptionCode(t, sys.Ping(ctx)))
	status, body, err := httpQueryAs(ctx, analystUser, analystPassword, chserverHTTPAddr, "database=system", "SELECT query FROM processes")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status, body)

	// What Grafana's ClickHouse plugin reads: schema, functions, the server's version.
	var n uint64
	for _, sql := range []string{
		"SELECT count() FROM system.databases",
		"SELECT count() FROM system.tables WHERE database = '" + db + "'",
		"SELECT count() FROM system.columns WHERE database IN ('" + db + "')",
		"SELECT count() FROM (SELECT name, is_aggregate, case_insensitive, alias_to FROM system.functions LIMIT 10000)",
		"SELECT count() FROM INFORMATION_SCHEMA.COLUMNS",
	} {
		require.NoError(t, conn.QueryRow(ctx, sql).Scan(&n), sql)
		require.NotZero(t, n, sql)
	}
	var version string
	require.NoError(t, conn.QueryRow(ctx, "SELECT version()").Scan(&version))
	for _, sql := range []string{"SHOW DATABASES", "SHOW TABLES FROM " + db, "DESC TABLE " + db + ".detections"} {
		rows, err := conn.Query(ctx, sql)
		require.NoError(t, err, sql)
		n := 0
		for rows.Next() {
			n++
		}
		require.NoError(t, rows.Err(), sql)
		require.NotZero(t, n, sql)
	}
}

func TestWriterAndAdminStillWork(t *testing.T) {
	db := vigieDatabase(t)
	ctx := context.Background()
	w := open(t, chserverAddr, asWriter())
	// The services' statements: a batch insert, reads, the enricher's table swap, the
	// correlator's own deletes, the system tables they read.
	batch, err := w.PrepareBatch(ctx, "INSERT INTO "+db+".correlator_watermarks (rule, window_end, alerts)")
	require.NoError(t, err)
	require.NoError(t, batch.Append("TEST_RULE", time.Now(), uint32(1)))
	require.NoError(t, batch.Send())
	require.NoError(t, w.Exec(ctx, "CREATE TABLE "+db+".facilities_load_test AS "+db+".facilities"))
	require.NoError(t, w.Exec(ctx, "INSERT INTO "+db+".facilities_load_test (facility_id) VALUES ('FAC_X')"))
	require.NoError(t, w.Exec(ctx, "EXCHANGE TABLES "+db+".facilities AND "+db+".facilities_load_test"))
	require.NoError(t, w.Exec(ctx, "EXCHANGE TABLES "+db+".facilities AND "+db+".facilities_load_test"))
	require.NoError(t, w.Exec(ctx, "DROP TABLE IF EXISTS "+db+".facilities_load_test"))
	require.NoError(t, w.Exec(ctx, "ALTER TABLE "+db+".correlator_watermarks DELETE WHERE rule = 'TEST_RULE' SETTINGS mutations_sync = 1"))
	var engine string
	require.NoError(t, w.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'detections'", db).Scan(&engine))
	require.Equal(t, "MergeTree", engine)
	var n uint64
	require.NoError(t, w.QueryRow(ctx, "SELECT count() FROM "+db+".detections").Scan(&n))
	// Nothing beyond the Vigie database.
	for _, sql := range []string{"CREATE DATABASE other", "SELECT query FROM system.processes", "DROP DATABASE " + db} {
		require.Contains(t, []int32{497}, refused(t, w, sql), sql)
	}

	admin := open(t, chserverAddr)
	other := newDatabase(t, admin)
	require.NoError(t, admin.Exec(ctx, "CREATE TABLE "+other+".t (a UInt8) ENGINE = MergeTree ORDER BY a"))
	require.NoError(t, admin.Exec(ctx, "INSERT INTO "+other+".t VALUES (1)"))
	require.NoError(t, admin.Exec(ctx, "ALTER TABLE "+other+".t ADD COLUMN b String"))
	require.NoError(t, admin.QueryRow(ctx, "SELECT count() FROM system.processes").Scan(&n))
	require.Equal(t, int32(497), refused(t, w, "SELECT * FROM "+other+".t"))
	require.Equal(t, int32(497), refused(t, open(t, chserverAddr, asAnalyst()), "SELECT * FROM "+other+".t"))
}

// HTTP: GET only reads; a browser page can neither read nor cause anything.
func TestHTTPReadOnlyGETAndNoBrowsers(t *testing.T) {
	db := newDatabase(t, open(t, chserverAddr))
	status, _, out := httpCall(t, http.MethodGet, "CREATE TABLE "+db+".g (a UInt8) ENGINE = Memory", nil, nil, nil)
	require.Equal(t, http.StatusForbidden, status, out)
	require.Contains(t, out, "Code: 164.")
	for _, sql := range []string{"DROP DATABASE " + db, "INSERT INTO " + db + ".g SELECT 1", "OPTIMIZE TABLE x", "SET max_threads = 1", "KILL QUERY WHERE 1"} {
		status, _, out = httpCall(t, http.MethodGet, sql, nil, nil, nil)
		require.NotEqual(t, http.StatusOK, status, "GET %s: %s", sql, out)
	}
	for _, method := range []string{http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		status, _, out = httpCall(t, method, "CREATE TABLE "+db+".g (a UInt8) ENGINE = Memory", nil, nil, nil)
		require.Contains(t, []int{http.StatusForbidden, http.StatusMethodNotAllowed}, status, "%s: %s", method, out)
	}
	status, _, out = httpCall(t, http.MethodGet, "SHOW DATABASES", nil, nil, nil)
	require.Equal(t, http.StatusOK, status, out)
	require.Contains(t, strings.Fields(out), db, "SHOW over HTTP lists the databases")
	status, _, out = httpCall(t, http.MethodGet, "SHOW TABLES FROM "+db+" FORMAT JSONEachRow", nil, nil, nil)
	require.Equal(t, http.StatusOK, status, out)

	browser := func(method string, header http.Header, params url.Values, body string) (int, http.Header, string) {
		t.Helper()
		return httpCall(t, method, "", params, strings.NewReader(body), header)
	}
	creds := url.Values{"user": {adminUser}, "password": {adminPassword}}
	auth := http.Header{"X-Clickhouse-User": {adminUser}, "X-Clickhouse-Key": {adminPassword}}
	for _, c := range []struct {
		name   string
		method string
		header http.Header
		params url.Values
	}{
		{"cross-origin POST", http.MethodPost, http.Header{"Origin": {"http://evil.example"}, "Content-Type": {"text/plain"}}, creds},
		{"cross-origin POST with headers", http.MethodPost, merge(auth, http.Header{"Origin": {"http://evil.example"}}), nil},
		{"null origin", http.MethodPost, http.Header{"Origin": {"null"}}, creds},
		{"other site", http.MethodPost, http.Header{"Sec-Fetch-Site": {"cross-site"}}, creds},
		{"same site, another port", http.MethodPost, http.Header{"Sec-Fetch-Site": {"same-site"}}, creds},
		{"cross-origin GET", http.MethodGet, http.Header{"Origin": {"http://evil.example"}}, url.Values{"query": {"SELECT 1"}, "user": {adminUser}, "password": {adminPassword}}},
		{"form POST", http.MethodPost, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, creds},
		{"text POST", http.MethodPost, http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}, creds},
		{"multipart POST", http.MethodPost, http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, creds},
		{"preflight", http.MethodOptions, http.Header{"Origin": {"http://evil.example"}, "Access-Control-Request-Method": {"POST"}}, nil},
	} {
		status, hd, out := browser(c.method, c.header, c.params, "CREATE TABLE "+db+".csrf (a UInt8) ENGINE = Memory")
		require.Equal(t, http.StatusForbidden, status, "%s: %s", c.name, out)
		for k := range hd {
			require.False(t, strings.HasPrefix(strings.ToLower(k), "access-control-"), "%s: CORS header %s granted", c.name, k)
		}
	}
	var exists uint8
	for _, table := range []string{"csrf", "g"} {
		require.NoError(t, open(t, chserverAddr).QueryRow(context.Background(), "EXISTS TABLE "+db+"."+table).Scan(&exists))
		require.Zero(t, exists, "a refused request created table %s", table)
	}
	// Clients are not browsers: a POST with header authentication, or with a body that is
	// no form, is served.
	status, _, out = browser(http.MethodPost, auth, nil, "SELECT 1")
	require.Equal(t, http.StatusOK, status, out)
	status, _, out = browser(http.MethodPost, http.Header{"Content-Type": {"application/octet-stream"}}, creds, "SELECT 1")
	require.Equal(t, http.StatusOK, status, out)
	// No anonymous user.
	req, err := http.NewRequest(http.MethodPost, "http://"+chserverHTTPAddr+"/", strings.NewReader("SELECT 1"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func merge(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}
