package conformance

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/require"
)

// httpGet sends sql in the query parameter (as curl -G does) with more URL parameters and
// request headers, and returns the response with its body read.
func httpGet(t *testing.T, params url.Values, header http.Header, sql string) (*http.Response, []byte) {
	t.Helper()
	if params == nil {
		params = url.Values{}
	}
	params.Set("query", sql)
	req, err := http.NewRequest(http.MethodGet, "http://"+chserverHTTPAddr+"/?"+params.Encode(), nil)
	require.NoError(t, err)
	req.SetBasicAuth(adminUser, adminPassword)
	for k, v := range header {
		req.Header[k] = v
	}
	// The transport must not ask for gzip itself: the tests choose Accept-Encoding.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// resultSizes are results of one block, two blocks and many blocks (max_block_size cuts them).
var resultSizes = []struct {
	name      string
	rows      int
	blockSize int
}{
	{"one block", 1, 65536},
	{"two blocks", 2, 1},
	{"many blocks", 5000, 97},
}

// Every output format is one valid document, read by its own reader, whatever the number of
// blocks of the result.
func TestHTTPFormatsAreOneDocument(t *testing.T) {
	for _, size := range resultSizes {
		sql := fmt.Sprintf("SELECT number AS n, toString(number) AS s FROM numbers(%d)", size.rows)
		params := func() url.Values { return url.Values{"max_block_size": {fmt.Sprint(size.blockSize)}} }
		t.Run(size.name, func(t *testing.T) {
			for _, f := range []string{"JSON", "JSONCompact", "JSONStrings", "JSONCompactStrings"} {
				resp, body := httpGet(t, params(), nil, sql+" FORMAT "+f)
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				require.Equal(t, f, resp.Header.Get("X-ClickHouse-Format"))
				dec := json.NewDecoder(bytes.NewReader(body))
				var doc struct {
					Meta []struct{ Name, Type string }
					Data []json.RawMessage
					Rows int
				}
				require.NoError(t, dec.Decode(&doc), f)
				require.False(t, dec.More(), "%s: one document, nothing after it", f)
				require.Len(t, doc.Meta, 2, f)
				require.Len(t, doc.Data, size.rows, f)
				require.Equal(t, size.rows, doc.Rows, f)
			}
			for _, f := range []string{"JSONEachRow", "JSONCompactEachRow", "JSONCompactEachRowWithNamesAndTypes"} {
				_, body := httpGet(t, params(), nil, sql+" FORMAT "+f)
				lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
				header := 0
				if strings.HasSuffix(f, "WithNamesAndTypes") {
					header = 2
				}
				require.Len(t, lines, size.rows+header, f)
				for _, l := range lines {
					require.True(t, json.Valid([]byte(l)), "%s: %q", f, l)
				}
			}
			for f, header := range map[string]int{"CSV": 0, "CSVWithNames": 1, "CSVWithNamesAndTypes": 2} {
				_, body := httpGet(t, params(), nil, sql+" FORMAT "+f)
				recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
				require.NoError(t, err, f)
				require.Len(t, recs, size.rows+header, "%s: the header once, then every row", f)
				if header > 0 {
					require.Equal(t, []string{"n", "s"}, recs[0])
				}
			}
			for f, header := range map[string]int{"TabSeparated": 0, "TSVWithNames": 1, "TabSeparatedWithNamesAndTypes": 2} {
				_, body := httpGet(t, params(), nil, sql+" FORMAT "+f)
				lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
				require.Len(t, lines, size.rows+header, f)
				if header > 0 {
					require.Equal(t, "n\ts", lines[0])
				}
			}
			// RowBinaryWithNamesAndTypes: its header once, then rows of UInt64 and String.
			_, body := httpGet(t, params(), nil, sql+" FORMAT RowBinaryWithNamesAndTypes")
			rd := bufio.NewReader(bytes.NewReader(body))
			n, err := binary.ReadUvarint(rd)
			require.NoError(t, err)
			require.Equal(t, uint64(2), n)
			for _, want := range []string{"n", "s", "UInt64", "String"} {
				l, err := binary.ReadUvarint(rd)
				require.NoError(t, err)
				b := make([]byte, l)
				_, err = io.ReadFull(rd, b)
				require.NoError(t, err)
				require.Equal(t, want, string(b))
			}
			for i := range size.rows {
				var v uint64
				require.NoError(t, binary.Read(rd, binary.LittleEndian, &v))
				require.Equal(t, uint64(i), v)
				l, err := binary.ReadUvarint(rd)
				require.NoError(t, err)
				_, err = rd.Discard(int(l))
				require.NoError(t, err)
			}
			_, err = rd.ReadByte()
			require.ErrorIs(t, err, io.EOF, "nothing after the last row")
			// Binary columnar formats: one file, its magic at both ends (pyarrow reads them in
			// TestPythonClients).
			for f, magic := range map[string]string{"Parquet": "PAR1", "Arrow": "ARROW1"} {
				_, body := httpGet(t, params(), nil, sql+" FORMAT "+f)
				require.True(t, bytes.HasPrefix(body, []byte(magic)), f)
				require.True(t, bytes.HasSuffix(body, []byte(magic)), f)
				require.Equal(t, 1, bytes.Count(body, []byte(magic+"\x00"))+bytes.Count(body[len(body)-len(magic):], []byte(magic))-1+boolInt(f == "Parquet"),
					"%s: one file, not several end to end", f)
			}
			_, body = httpGet(t, params(), nil, sql+" FORMAT ArrowStream")
			require.True(t, bytes.HasSuffix(body, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), "ArrowStream ends with its end-of-stream marker")
			require.Equal(t, 1, bytes.Count(body, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}))
			_, body = httpGet(t, params(), nil, sql+" FORMAT ORC")
			require.True(t, bytes.HasPrefix(body, []byte("ORC")))
			require.Equal(t, 1, bytes.Count(body, []byte("ORC\x08"))+boolInt(!bytes.Contains(body, []byte("ORC\x08"))))
			// Pretty formats hold every row.
			pp := params()
			pp.Set("output_format_pretty_max_rows", "100000")
			_, body = httpGet(t, pp, nil, sql+" FORMAT PrettyCompactMonoBlock")
			require.Equal(t, 1, strings.Count(string(body), "┌"), "one table")
			require.Equal(t, size.rows, strings.Count(string(body), "│")/3)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestHTTPHeadersAndErrors(t *testing.T) {
	resp, body := httpGet(t, url.Values{"query_id": {"conformance-q1"}}, nil, "SELECT 1 FORMAT JSON")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "conformance-q1", resp.Header.Get("X-ClickHouse-Query-Id"))
	require.Equal(t, "JSON", resp.Header.Get("X-ClickHouse-Format"))
	require.NotEmpty(t, resp.Header.Get("X-ClickHouse-Timezone"))
	var sum map[string]string
	require.NoError(t, json.Unmarshal([]byte(resp.Header.Get("X-ClickHouse-Summary")), &sum))
	require.Contains(t, sum, "read_rows")
	require.True(t, json.Valid(body))

	// wait_end_of_query=1: the summary has the final counters.
	resp, _ = httpGet(t, url.Values{"wait_end_of_query": {"1"}}, nil, "SELECT count() FROM numbers(1000) FORMAT CSV")
	require.NoError(t, json.Unmarshal([]byte(resp.Header.Get("X-ClickHouse-Summary")), &sum))
	require.Equal(t, "1000", sum["read_rows"])

	resp, body = httpGet(t, nil, nil, "SELECT * FROM nosuch FORMAT JSON")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "60", resp.Header.Get("X-ClickHouse-Exception-Code"))
	require.True(t, strings.HasPrefix(string(body), "Code: 60. DB::Exception: "), string(body))

	// An error after the first bytes ends the body with the exception, as ClickHouse does.
	resp, body = httpGet(t, url.Values{"max_block_size": {"100"}}, nil, "SELECT throwIf(number = 3000, 'boom') FROM numbers(5000) FORMAT CSV")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "Code: 395.")
}

// Responses are compressed when the client asks with enable_http_compression=1 and accepts
// the encoding; request bodies are decoded by their Content-Encoding.
func TestHTTPCompression(t *testing.T) {
	sql := "SELECT number, toString(number) FROM numbers(20000) FORMAT CSV"
	_, plain := httpGet(t, nil, http.Header{"Accept-Encoding": {"gzip"}}, sql)
	resp, _ := httpGet(t, nil, http.Header{"Accept-Encoding": {"gzip"}}, sql)
	require.Empty(t, resp.Header.Get("Content-Encoding"), "no compression unless enable_http_compression=1")
	decoders := map[string]func(io.Reader) (io.Reader, error){
		"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		"deflate": func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) },
		"br":      func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		"zstd":    func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
		"lz4":     func(r io.Reader) (io.Reader, error) { return lz4.NewReader(r), nil },
	}
	for enc, dec := range decoders {
		resp, body := httpGet(t, url.Values{"enable_http_compression": {"1"}}, http.Header{"Accept-Encoding": {enc}}, sql)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, enc, resp.Header.Get("Content-Encoding"))
		require.Less(t, len(body), len(plain), enc)
		r, err := dec(bytes.NewReader(body))
		require.NoError(t, err, enc)
		got, err := io.ReadAll(r)
		require.NoError(t, err, enc)
		require.Equal(t, plain, got, enc)
	}
	// The client's preference order is followed.
	resp, _ = httpGet(t, url.Values{"enable_http_compression": {"1"}}, http.Header{"Accept-Encoding": {"br;q=1.0, gzip;q=0.5"}}, sql)
	require.Equal(t, "br", resp.Header.Get("Content-Encoding"))

	// A compressed request body.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = io.WriteString(zw, "SELECT 40 + 2")
	require.NoError(t, zw.Close())
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+chserverHTTPAddr+"/", &zb)
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "gzip")
	req.SetBasicAuth(adminUser, adminPassword)
	hresp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = hresp.Body.Close() }()
	b, _ := io.ReadAll(hresp.Body)
	require.Equal(t, "42\n", string(b))
}
