package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

func TestGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- testServer.Serve(ctx, ln) }()
	defer cancel()

	opts := &clickhouse.Options{Addr: []string{ln.Addr().String()}, MaxOpenConns: 1, Auth: clickhouse.Auth{Username: "default", Password: testPassword}}
	idle, err := clickhouse.Open(opts)
	require.NoError(t, err)
	defer idle.Close()
	require.NoError(t, idle.Ping(context.Background()))
	busy, err := clickhouse.Open(opts)
	require.NoError(t, err)
	defer busy.Close()
	require.NoError(t, busy.Ping(context.Background()))

	// A query running when shutdown starts finishes with its result.
	result := make(chan error, 1)
	go func() {
		var n uint8
		result <- busy.QueryRow(context.Background(), "SELECT max(sleepEachRow(0.2)) FROM numbers(3)").Scan(&n)
	}()
	require.Eventually(t, func() bool {
		testServer.mu.Lock()
		defer testServer.mu.Unlock()
		for c := range testServer.conns {
			if c.inQuery.Load() {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-result)
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(testServer.cfg.ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	// Nothing listens any more.
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err)
}
