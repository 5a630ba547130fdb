package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestAdminServer(t *testing.T) {
	reg := telemetry.NewRegistry()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "vigie_test_events_total", Help: "test"}).Add(3)

	var readiness telemetry.Readiness
	var brokerDown atomic.Bool
	readiness.AddCheck("kafka", func(context.Context) error {
		if brokerDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})

	srv, err := telemetry.NewAdminServer("127.0.0.1:0", reg, &readiness, zap.NewNop())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	base := "http://" + srv.Addr()

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready before MarkReady")
	require.Contains(t, body, "not started")

	readiness.MarkReady()
	code, _ = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)

	brokerDown.Store(true)
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "kafka: connection refused")
	brokerDown.Store(false)

	readiness.MarkNotReady()
	code, _ = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)

	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "vigie_test_events_total 3")
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "process_resident_memory_bytes")

	http.DefaultClient.CloseIdleConnections()
	require.NoError(t, srv.Shutdown(context.Background()))
	require.NoError(t, <-done)
}

func TestLogConfigValidate(t *testing.T) {
	require.NoError(t, telemetry.DefaultLogConfig().Validate())
	require.ErrorContains(t, telemetry.LogConfig{Format: "xml", Level: "info"}.Validate(), "log.format")
	require.ErrorContains(t, telemetry.LogConfig{Format: "json", Level: "loud"}.Validate(), "log.level")
	for _, format := range []string{"json", "console"} {
		logger, err := telemetry.NewLogger(telemetry.LogConfig{Format: format, Level: "debug"}, "test")
		require.NoError(t, err)
		logger.Debug("hello")
	}
}
