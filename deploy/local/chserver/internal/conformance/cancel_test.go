package conformance

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/server"
)

// endless is a query that produces nothing until it is stopped: the one that once held the
// whole engine after its client had gone.
const endless = "SELECT count() FROM system.numbers"

// oneReadServer starts, on the suite's engine, a server with a single read slot, so that a
// read which starts proves the one before it has stopped. It returns its native and HTTP
// addresses.
func oneReadServer(t *testing.T, queueWait time.Duration) (string, string) {
	t.Helper()
	cfg := suiteConfig
	cfg.DataDir = t.TempDir()
	cfg.TmpDir = ""
	cfg.MaxQueries = 2
	cfg.QueueWait = queueWait
	srv, err := server.New(cfg, testEngine, zap.NewNop())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ctx, ln) }()
	go func() { defer wg.Done(); _ = srv.ServeHTTPClients(ctx, hln) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ln.Addr().String(), hln.Addr().String()
}

// httpQuery sends sql as the body of a POST by the admin user and returns the status and body.
func httpQuery(ctx context.Context, addr, params, sql string) (int, string, error) {
	return httpQueryAs(ctx, adminUser, adminPassword, addr, params, sql)
}

// httpQueryAs is httpQuery by another user.
func httpQueryAs(ctx context.Context, user, password, addr, params, sql string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/?"+params, strings.NewReader(sql))
	if err != nil {
		return 0, "", err
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// nextReadAfter measures how long after stop() the next read gets the only read slot.
func nextReadAfter(t *testing.T, httpAddr string, stop func()) time.Duration {
	t.Helper()
	stop()
	start := time.Now()
	status, body, err := httpQuery(context.Background(), httpAddr, "", "SELECT 'next'")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "next\n", body)
	return time.Since(start)
}

// A client that goes away or cancels stops its query within a second, before or after the
// first block, over HTTP and the native protocol: the single read slot is free again.
func TestClientGoneStopsQuery(t *testing.T) {
	nativeAddr, httpAddr := oneReadServer(t, 5*time.Second)
	ctx := context.Background()
	running := func(t *testing.T, tag string) {
		// The query holds the slot: a second read would wait for it. The suite's own server
		// runs on the same engine and sees its system.processes.
		require.Eventually(t, func() bool {
			_, body, err := httpQuery(ctx, chserverHTTPAddr, "", "SELECT count() FROM system.processes WHERE position(query, '"+tag+"') > 0 AND position(query, 'system.processes') = 0")
			return err == nil && strings.TrimSpace(body) != "0"
		}, 5*time.Second, 20*time.Millisecond)
	}
	cases := []struct {
		name  string
		start func(t *testing.T, endless string) (stop func())
	}{
		{"http disconnect before the first block", func(t *testing.T, endless string) func() {
			hctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _, _, _ = httpQuery(hctx, httpAddr, "", endless+" FORMAT JSON") }()
			return func() { cancel(); <-done }
		}},
		{"http disconnect, native format", func(t *testing.T, endless string) func() {
			hctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _, _, _ = httpQuery(hctx, httpAddr, "", endless+" FORMAT Native") }()
			return func() { cancel(); <-done }
		}},
		{"native cancel before the first block", func(t *testing.T, endless string) func() {
			conn := open(t, nativeAddr, withPool(1))
			qctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				var n uint64
				_ = conn.QueryRow(qctx, endless).Scan(&n)
			}()
			return func() { cancel(); <-done }
		}},
		{"native socket closed before the first block", func(t *testing.T, endless string) func() {
			nc, err := net.Dial("tcp", nativeAddr)
			require.NoError(t, err)
			conn := clickhouse.OpenDB(&clickhouse.Options{Addr: []string{nativeAddr}, Auth: clickhouse.Auth{Username: adminUser, Password: adminPassword}, DialContext: func(context.Context, string) (net.Conn, error) { return nc, nil }})
			done := make(chan struct{})
			go func() { defer close(done); _, _ = conn.Exec(endless) }()
			return func() { _ = nc.Close(); <-done; _ = conn.Close() }
		}},
		{"native cancel after the first block", func(t *testing.T, endless string) func() {
			conn := open(t, nativeAddr, withPool(1))
			qctx, cancel := context.WithCancel(ctx)
			rows, err := conn.Query(qctx, strings.Replace(endless, "count()", "number", 1)+" WHERE sleepEachRow(0.001) = 0 SETTINGS max_block_size = 100")
			require.NoError(t, err)
			require.True(t, rows.Next())
			return func() { cancel(); _ = rows.Close() }
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tag := fmt.Sprintf("gone_case_%d", i)
			stop := c.start(t, "SELECT count() AS "+tag+" FROM system.numbers")
			running(t, tag)
			d := nextReadAfter(t, httpAddr, stop)
			t.Logf("next read got the slot %v after the client left", d)
			require.Less(t, d, time.Second)
		})
	}
}

func TestMaxExecutionTime(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	status, body, err := httpQuery(ctx, chserverHTTPAddr, "max_execution_time=1", endless)
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Contains(t, body, "Code: 159.")
	require.Less(t, time.Since(start), 3*time.Second)

	conn := open(t, chserverAddr)
	start = time.Now()
	var n uint64
	err = conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 1})), endless).Scan(&n)
	require.Equal(t, int32(159), exceptionCode(t, err))
	require.Less(t, time.Since(start), 3*time.Second)
}

// Several reads run at the same time: three one-second reads take about one second.
func TestReadsRunTogether(t *testing.T) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				conn := open(t, chserverAddr, withPool(1))
				var v uint8
				require.NoError(t, conn.QueryRow(context.Background(), "SELECT sleep(1)").Scan(&v))
				return
			}
			status, body, err := httpQuery(context.Background(), chserverHTTPAddr, "", "SELECT sleep(1)")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status, body)
		}()
	}
	wg.Wait()
	require.Less(t, time.Since(start), 2500*time.Millisecond)
}

// A read that holds every read slot never holds an insert, and a read that finds no slot
// fails with TOO_MANY_SIMULTANEOUS_QUERIES after the queue wait, not for ever.
func TestLongReadDoesNotHoldInserts(t *testing.T) {
	nativeAddr, httpAddr := oneReadServer(t, 300*time.Millisecond)
	ctx := context.Background()
	conn := open(t, nativeAddr)
	db := newDatabase(t, conn)
	require.NoError(t, conn.Exec(ctx, "CREATE TABLE "+db+".t (a UInt32) ENGINE = MergeTree ORDER BY a"))

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = httpQuery(rctx, httpAddr, "", endless) }()
	require.Eventually(t, func() bool {
		status, body, err := httpQuery(ctx, httpAddr, "", "SELECT 1")
		return err == nil && status == http.StatusServiceUnavailable && strings.Contains(body, "Code: 202.")
	}, 5*time.Second, 50*time.Millisecond, "a read finds the only read slot taken")

	start := time.Now()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (a)")
	require.NoError(t, err)
	require.NoError(t, batch.Append(uint32(7)))
	require.NoError(t, batch.Send())
	status, body, err := httpQuery(ctx, httpAddr, "query="+url.QueryEscape("INSERT INTO "+db+".t FORMAT CSV"), "8\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, body)
	t.Logf("two inserts beside a running read: %v", time.Since(start))
	require.Less(t, time.Since(start), 2*time.Second)

	var n uint64
	err = conn.QueryRow(ctx, "SELECT count() FROM "+db+".t").Scan(&n)
	require.Equal(t, int32(202), exceptionCode(t, err), "the native protocol says the server is full too")
	cancel()
	<-done
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+db+".t").Scan(&n))
	require.Equal(t, uint64(2), n)
}
