package conformance

// The HTTP interface, driven by clickhouse-go with Protocol HTTP and by plain HTTP requests
// the way curl and clickhouse-connect send them.

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

func TestHTTPWithClickHouseGo(t *testing.T) {
	ctx := context.Background()
	db := newDatabase(t, open(t, chserverAddr))
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{chserverHTTPAddr}, Protocol: clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: db, Username: adminUser, Password: adminPassword},
		DialTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.Ping(ctx))

	require.NoError(t, conn.Exec(ctx, `CREATE TABLE events (id UInt64, at DateTime64(3, 'UTC'),
		facility LowCardinality(String), rssi Nullable(Int16), tags Array(String)) ENGINE = MergeTree ORDER BY id`))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO events (id, at, facility, rssi, tags)")
	require.NoError(t, err)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	for i := range 1000 {
		var rssi *int16
		if i%2 == 0 {
			v := int16(-i % 100)
			rssi = &v
		}
		require.NoError(t, batch.Append(uint64(i), at.Add(time.Duration(i)*time.Second), "fac-"+string(rune('a'+i%3)), rssi, []string{"x"}))
	}
	require.NoError(t, batch.Send())

	var count, sum uint64
	var first time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(), sum(id), min(at) FROM events").Scan(&count, &sum, &first))
	require.Equal(t, uint64(1000), count)
	require.Equal(t, uint64(999*1000/2), sum)
	require.True(t, first.Equal(at), "DateTime64(3) keeps its milliseconds: %v", first)

	rows, err := conn.Query(ctx, "SELECT facility, count() FROM events WHERE id < ? GROUP BY facility ORDER BY facility", 3)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var f string
		var n uint64
		require.NoError(t, rows.Scan(&f, &n))
		require.Equal(t, uint64(1), n)
		got = append(got, f)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"fac-a", "fac-b", "fac-c"}, got)

	require.Equal(t, int32(60), exceptionCode(t, conn.Exec(ctx, "SELECT * FROM nosuch")))
}

// httpCall sends one request to the HTTP interface and returns its status, headers and body.
func httpCall(t *testing.T, method, query string, params url.Values, body io.Reader, header http.Header) (int, http.Header, string) {
	t.Helper()
	params = maps.Clone(params)
	if params == nil {
		params = url.Values{}
	}
	if query != "" {
		params.Set("query", query)
	}
	req, err := http.NewRequest(method, "http://"+chserverHTTPAddr+"/?"+params.Encode(), body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if !params.Has("user") && req.Header.Get("X-ClickHouse-User") == "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("X-ClickHouse-User", adminUser)
		req.Header.Set("X-ClickHouse-Key", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHTTPInterface(t *testing.T) {
	db := newDatabase(t, open(t, chserverAddr))
	inDB := url.Values{"database": {db}}
	post := func(query string, params url.Values, body string) (int, string) {
		t.Helper()
		status, _, out := httpCall(t, http.MethodPost, query, params, strings.NewReader(body), nil)
		return status, out
	}
	ok := func(query string, params url.Values, body string) string {
		t.Helper()
		status, out := post(query, params, body)
		require.Equal(t, http.StatusOK, status, out)
		return out
	}

	status, _, out := httpCall(t, http.MethodGet, "", nil, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "Ok.\n", out)
	status, _, out = httpCall(t, http.MethodGet, "SELECT 1, 'a'", nil, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "1\ta\n", out, "TabSeparated by default")

	ok("", inDB, "CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
	// Data after the query parameter, after FORMAT in the body, inline VALUES, INSERT SELECT.
	ok("INSERT INTO t FORMAT CSV", inDB, "1,one\n2,two\n")
	ok("", inDB, "INSERT INTO t FORMAT TabSeparated\n3\tthree\n")
	ok("", inDB, "INSERT INTO t VALUES (4, 'four'), (5, 'blank\n\nline')")
	ok("INSERT INTO t VALUES (6, 'six')", inDB, "")
	ok("INSERT INTO t SELECT 7, 'seven'", inDB, "")
	// Compressed bodies.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"a":8,"s":"gzip"}` + "\n"))
	require.NoError(t, zw.Close())
	status, _, out = httpCall(t, http.MethodPost, "INSERT INTO t FORMAT JSONEachRow", inDB, &gz, http.Header{"Content-Encoding": {"gzip"}})
	require.Equal(t, http.StatusOK, status, out)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	zbody := enc.EncodeAll([]byte(`{"a":9,"s":"zstd"}`+"\n"), nil)
	status, _, out = httpCall(t, http.MethodPost, "INSERT INTO t FORMAT JSONEachRow", inDB, bytes.NewReader(zbody), http.Header{"Content-Encoding": {"zstd"}})
	require.Equal(t, http.StatusOK, status, out)

	require.Equal(t, "9\t45\n", ok("SELECT count(), sum(a) FROM t", inDB, ""))
	require.Equal(t, "{\"a\":5,\"s\":\"blank\\n\\nline\"}\n", ok("", inDB, "SELECT * FROM t WHERE a = 5 FORMAT JSONEachRow"),
		"the FORMAT clause picks the output format")
	require.Equal(t, "2,\"two\"\n", ok("SELECT * FROM t WHERE a = 2", url.Values{"database": {db}, "default_format": {"CSV"}}, ""))
	// Server-side parameters.
	params := url.Values{"database": {db}, "param_lo": {"7"}, "param_s": {"one"}, "param_tbl": {"t"}}
	require.Equal(t, "1\n8\n9\n", ok("SELECT a FROM {tbl:Identifier} WHERE a > {lo:UInt32} OR s = {s:String} ORDER BY a", params, ""))
	// Settings from the URL apply to the query.
	status, out = post("SELECT count() FROM t", url.Values{"database": {db}, "max_result_rows": {"0"}, "readonly": {"1"}}, "")
	require.Equal(t, http.StatusOK, status, out)
	// An empty result keeps the frame of its format.
	require.Contains(t, ok("SELECT a FROM t WHERE 0 FORMAT JSON", inDB, ""), `"rows": 0`)
	require.Contains(t, ok("DESCRIBE TABLE t", inDB, ""), "a\tUInt32")

	for _, c := range []struct {
		name   string
		query  string
		params url.Values
		body   string
		status int
		code   string
	}{
		{"unknown table", "SELECT * FROM nosuch", inDB, "", http.StatusNotFound, "60"},
		{"syntax error", "SELEC 1", inDB, "", http.StatusBadRequest, "62"},
		{"missing parameter", "SELECT {x:UInt8}", inDB, "", http.StatusBadRequest, "456"},
		{"no data", "INSERT INTO t FORMAT CSV", inDB, "", http.StatusBadRequest, "108"},
		{"bad data", "INSERT INTO t FORMAT CSV", inDB, "x,y\n", http.StatusBadRequest, "27"},
		{"wrong password", "SELECT 1", url.Values{"user": {"vigie"}, "password": {"nope"}}, "", http.StatusUnauthorized, "516"},
		{"session statement", "SET max_threads = 1", nil, "", http.StatusNotImplemented, "48"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, header, out := httpCall(t, http.MethodPost, c.query, c.params, strings.NewReader(c.body), nil)
			require.Equal(t, c.status, status, out)
			require.Equal(t, c.code, header.Get("X-ClickHouse-Exception-Code"), out)
			require.True(t, strings.HasPrefix(out, "Code: "+c.code+". DB::Exception: "), out)
		})
	}
	require.Equal(t, "9\n", ok("SELECT count() FROM t", inDB, ""), "failed inserts left nothing behind")

	status, _, out = httpCall(t, http.MethodPost, "SELECT 1", nil, nil, http.Header{"X-Clickhouse-User": {"vigie"}, "X-Clickhouse-Key": {"s3cret"}})
	require.Equal(t, http.StatusOK, status, out)
}
