package app_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/ingest/internal/app"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// gauge returns the value of an unlabelled metric of e.
func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics(t, e), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// slowClient sends a request's headers and the first bytes of its body, then nothing: a
// sensor on a stalled link, or one that trickles.
type slowClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) slowClient(t *testing.T, sensor string, contentLength int, sent []byte) *slowClient {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: ingest\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n",
		server.Path, e.tokens[sensor], contentLength)
	require.NoError(t, err)
	_, err = conn.Write(sent)
	require.NoError(t, err)
	return &slowClient{conn: conn, r: bufio.NewReader(conn)}
}

// answer waits for the server's answer, within d.
func (c *slowClient) answer(t *testing.T, d time.Duration) (*http.Response, string) {
	t.Helper()
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(d)))
	resp, err := http.ReadResponse(c.r, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// requireOverloaded checks a 503 of a limit: Retry-After, the limit named, the contract's
// Error schema.
func requireOverloaded(t *testing.T, r reply, limit string) {
	t.Helper()
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	require.NotEmpty(t, r.retryAfter)
	var body server.ErrorResponse
	require.NoError(t, json.Unmarshal([]byte(r.raw), &body))
	require.Equal(t, limit, body.Limit)
	require.Contains(t, body.Error, limit)
	requireMatchesOpenAPI(t, openAPISchema(t, "Error"), r.raw)
}

// TestLimitsInFlight: requests beyond the request slots, or whose body's bytes do not come
// free within the wait (sent as is or gzip-compressed), are answered 503 naming the limit
// and counted; stalled clients hold their slot and bytes until the read timeout, and then
// give them back; retried, the refused requests get in, their events stored once.
func TestLimitsInFlight(t *testing.T) {
	const budget = 64 << 10
	e := start(t, func(c *app.Config) {
		c.Limits.MaxBodyBytes, c.Limits.MaxWireBytes = budget, budget
		c.Limits.MaxBytesInFlight = budget
		c.Limits.MaxRequestsInFlight = 3
		c.Limits.AdmissionWait = 300 * time.Millisecond
		c.Limits.ReadHeaderTimeout = 2 * time.Second
		c.Limits.ReadTimeout = 6 * time.Second
	})
	good, ids := makeEvents(t, sensorA, "limits", 30)

	// Two stalled clients hold 48 KiB of the 64 and two of the three slots (bodies are
	// reserved by buffer size: powers of two up to 1 MiB).
	stalled := e.slowClient(t, sensorA, 32<<10, good[0])
	second := e.slowClient(t, sensorA, 16<<10, nil)
	require.Eventually(t, func() bool { return gauge(t, e, "vigie_ingest_bytes_in_flight") == 48<<10 }, 5*time.Second, 10*time.Millisecond)

	// A body of 20 KB does not fit: it waits, then 503.
	plain := ndjson(good[:10])
	plain = append(plain, bytes.Repeat([]byte{'\n'}, 20000-len(plain))...)
	requireOverloaded(t, e.post(sensorA, plain, nil), server.LimitBytes)

	// A gzip body is expected at 8 times its size (here at most 16 KiB: it fits) and reserves
	// more as it decodes: beyond what is free, it waits, then 503.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain)
	require.NoError(t, zw.Close())
	require.LessOrEqual(t, gz.Len()*8, 16<<10)
	gzHeader := map[string]string{"Content-Encoding": "gzip"}
	requireOverloaded(t, e.post(sensorA, gz.Bytes(), gzHeader), server.LimitBytes)

	// A third stalled client takes the last slot: the next request is refused at once.
	third := e.slowClient(t, sensorA, 1000, nil)
	require.Eventually(t, func() bool { return gauge(t, e, "vigie_ingest_bytes_in_flight") == 48<<10+4<<10 }, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 3, gauge(t, e, "vigie_ingest_requests_in_flight"))
	requireOverloaded(t, e.post(sensorA, ndjson(good[10:12]), nil), server.LimitRequests)

	m := metrics(t, e)
	require.Contains(t, m, `vigie_ingest_overloaded_total{limit="limits.max_bytes_in_flight"} 2`)
	require.Contains(t, m, `vigie_ingest_overloaded_total{limit="limits.max_requests_in_flight"} 1`)

	// The read timeout ends the stalled requests: their slots and bytes come free.
	for _, c := range []*slowClient{stalled, second, third} {
		resp, body := c.answer(t, 15*time.Second)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, body)
		requireMatchesOpenAPI(t, openAPISchema(t, "Error"), body)
	}
	require.Eventually(t, func() bool {
		return gauge(t, e, "vigie_ingest_bytes_in_flight") == 0 && gauge(t, e, "vigie_ingest_requests_in_flight") == 0
	}, 5*time.Second, 10*time.Millisecond)

	// The refused requests, retried, get in; nothing was stored twice.
	for _, r := range []reply{e.post(sensorA, plain, nil), e.post(sensorA, gz.Bytes(), gzHeader), e.post(sensorA, ndjson(good[10:12]), nil)} {
		require.Equal(t, http.StatusOK, r.code, r.raw)
	}
	got := eventIDs(t, readAll(t, e.brokers, e.cfg.Topics.Raw))
	require.Len(t, got, 12)
	for _, id := range ids[:12] {
		require.Equal(t, 1, got[id], id)
	}
}

// TestSlowHeadersCutOff: a client that trickles its headers is disconnected after
// limits.read_header_timeout, without ever taking a request slot.
func TestSlowHeadersCutOff(t *testing.T) {
	e := start(t, func(c *app.Config) {
		c.Limits.ReadHeaderTimeout = time.Second
		c.Limits.AdmissionWait = 500 * time.Millisecond
		c.Limits.ReadTimeout = 5 * time.Second
	})
	conn, err := net.Dial("tcp", e.addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = conn.Write([]byte("POST " + server.Path + " HTTP/1.1\r\nHost: ingest\r\n"))
	require.NoError(t, err)
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn) // until the server closes the connection
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(200 * time.Millisecond) // one header byte every 200 ms
	defer tick.Stop()
	for {
		select {
		case d := <-closed:
			require.GreaterOrEqual(t, d, 800*time.Millisecond, "not before the timeout (which starts at the server's first read)")
			require.Less(t, d, 10*time.Second)
			require.Zero(t, gauge(t, e, "vigie_ingest_requests_in_flight"))
			return
		case <-tick.C:
			_, _ = conn.Write([]byte("X"))
			require.Zero(t, gauge(t, e, "vigie_ingest_requests_in_flight"), "headers unread: no slot")
		}
	}
}
