package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/service"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childMain() // the test binary re-executed as a service: see main_test.go
		return
	}
	goleak.VerifyTestMain(m)
}

// testConfig is a service configuration as every service writes it.
type testConfig struct {
	service.Base `yaml:",inline"`
	Fail         string `yaml:"fail"`
}

func (c *testConfig) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if c.Fail != "" && c.Fail != "build" && c.Fail != "run" {
		return fmt.Errorf("fail: %q is not build or run", c.Fail)
	}
	return nil
}

func newConfig() *testConfig {
	return &testConfig{Base: service.DefaultBase("127.0.0.1:0")}
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// recorder notes events in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// worker is a part that runs until stopped.
func worker(r *recorder, name string) (func(context.Context) error, func(context.Context) error) {
	stopped := make(chan struct{})
	run := func(ctx context.Context) error {
		select {
		case <-stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.add(name + " drained")
		return nil
	}
	stop := func(context.Context) error {
		r.add(name + " stop")
		close(stopped)
		return nil
	}
	return run, stop
}

// start runs a service in the background and returns it once started, and a function that
// stops it and returns Run's error.
func start(t *testing.T, name string, cfg *testConfig, build func(context.Context, *service.Service, *testConfig) error, opts ...service.Option) (*service.Service, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *service.Service, 1)
	done := make(chan error, 1)
	opts = append([]service.Option{service.WithLogger(zaptest.NewLogger(t)), service.WithStarted(func(s *service.Service) { started <- s })}, opts...)
	go func() { done <- service.Run(ctx, name, cfg, build, opts...) }()
	select {
	case s := <-started:
		return s, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("service ended before it started: %v", err)
		return nil, nil
	}
}

func TestAdminEndpoints(t *testing.T) {
	var depDown atomic.Bool
	depDown.Store(true)
	var duringBuild, duringStop string
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		promauto.With(s.Registerer()).NewCounter(prometheus.CounterOpts{Name: "events_total", Help: "test"}).Add(3)
		s.AddCheck("ok-dep", func(context.Context) error { return nil })
		s.AddCheck("dep", func(context.Context) error {
			if depDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		})
		_, duringBuild = get(t, "http://"+s.AdminAddr()+"/readyz")
		var r recorder
		run, stop := worker(&r, "source")
		s.Add("source", run, func(ctx context.Context) error {
			_, duringStop = get(t, "http://"+s.AdminAddr()+"/readyz")
			return stop(ctx)
		})
		return nil
	}
	s, stop := start(t, "test-svc", newConfig(), build)
	base := "http://" + s.AdminAddr()

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready\nok-dep: ok\ndep: error: connection refused\n", body, "the failing check by name")
	require.ErrorContains(t, s.Ready(context.Background()), "dep: error: connection refused")

	depDown.Store(false)
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready\nok-dep: ok\ndep: ok\n", body)
	require.NoError(t, s.Ready(context.Background()))

	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `(?m)^vigie_build_info\{go_version="go[^"]+",revision="[^"]+",version="[^"]+"\} 1$`, body)
	require.Contains(t, body, "\nvigie_test_svc_events_total 3\n", "Registerer prefixes vigie_<name>_, dashes as underscores")
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "process_resident_memory_bytes")
	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `promhttp_metric_handler_requests_total{code="200"} 1`, "the client library's own handler metrics")

	code, body = get(t, base+"/debug/pprof/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine")
	code, _ = get(t, base+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, stop())
	require.Contains(t, duringBuild, "not ready: starting\n", "not ready while build runs")
	require.Contains(t, duringStop, "not ready: stopping\n", "not ready as soon as shutdown begins")
	_, err := client.Get(base + "/healthz")
	require.Error(t, err, "admin server closed after Run")
}

func TestStopOrderThenClosers(t *testing.T) {
	var r recorder
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		for _, name := range []string{"source", "batcher", "sink"} {
			run, stop := worker(&r, name)
			s.Add(name, run, stop)
		}
		s.Add("ticker", func(ctx context.Context) error { <-ctx.Done(); r.add("ticker cancelled"); return ctx.Err() }, nil)
		s.OnClose(func() error { r.add("close producer"); return nil })
		s.OnClose(func() error { r.add("close clickhouse"); return nil })
		return nil
	}
	_, stop := start(t, "order", newConfig(), build)
	require.NoError(t, stop())
	require.Equal(t, []string{
		"source stop", "source drained", "batcher stop", "batcher drained", "sink stop", "sink drained", "ticker cancelled",
		"close clickhouse", "close producer",
	}, r.list())
}

func TestBuildErrorRunsClosers(t *testing.T) {
	var closed atomic.Bool
	var addr string
	boom := errors.New("rules/x.yaml: line 3: unknown key windw")
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		addr = s.AdminAddr()
		s.OnClose(func() error { closed.Store(true); return nil })
		return boom
	}
	err := service.Run(context.Background(), "broken", newConfig(), build, service.WithLogger(zaptest.NewLogger(t)))
	require.ErrorIs(t, err, boom)
	require.True(t, closed.Load(), "what build opened is closed")
	_, err = client.Get("http://" + addr + "/healthz")
	require.Error(t, err, "admin server closed")
}

func TestFailingPartEndsRun(t *testing.T) {
	boom := errors.New("broker gone for good")
	var r recorder
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		run, stop := worker(&r, "server")
		s.Add("server", run, stop)
		s.Add("consumer", func(context.Context) error { return boom }, nil)
		return nil
	}
	err := service.Run(context.Background(), "failing", newConfig(), build, service.WithLogger(zaptest.NewLogger(t)))
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "consumer: broker gone for good")
	require.Equal(t, []string{"server stop", "server drained"}, r.list())
}

func TestReloadHooksInOrder(t *testing.T) {
	var r recorder
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		s.OnReload("rules", func(context.Context) error { r.add("rules"); return nil })
		s.OnReload("credentials", func(context.Context) error { r.add("credentials"); return errors.New("credentials.yaml: bad hash") })
		s.OnReload("reference", func(context.Context) error { r.add("reference"); return nil })
		run, stop := worker(&r, "part")
		s.Add("part", run, stop)
		return nil
	}
	s, stop := start(t, "reloader", newConfig(), build)
	err := s.Reload(context.Background())
	require.ErrorContains(t, err, "reload credentials: credentials.yaml: bad hash")
	require.Equal(t, []string{"rules", "credentials", "reference"}, r.list(), "every hook runs, in order, despite a failure")
	_, body := get(t, "http://"+s.AdminAddr()+"/metrics")
	require.Contains(t, body, `vigie_reloader_reloads_total{hook="credentials",result="error"} 1`)
	require.Contains(t, body, `vigie_reloader_reloads_total{hook="rules",result="ok"} 1`)
	require.NoError(t, s.Ready(context.Background()), "a failed reload does not make the service unready")
	require.NoError(t, stop())
}

func TestRunRefusesBadBase(t *testing.T) {
	cfg := newConfig()
	cfg.ShutdownTimeout = 0
	err := service.Run(context.Background(), "svc", cfg, func(context.Context, *service.Service, *testConfig) error { return nil })
	require.EqualError(t, err, "config: shutdown_timeout: 0s must be positive")

	err = service.Run(context.Background(), "Bad_Name", newConfig(), func(context.Context, *service.Service, *testConfig) error { return nil })
	require.ErrorContains(t, err, `name "Bad_Name"`)

	cfg = newConfig()
	cfg.Admin.Listen = "localhost"
	require.ErrorContains(t, cfg.Validate(), "admin.listen: address localhost: missing port")
	cfg = newConfig()
	cfg.Log.Level = "loud"
	require.ErrorContains(t, cfg.Validate(), "log.level")
}

func TestAdminPortInUse(t *testing.T) {
	s, stop := start(t, "first", newConfig(), func(_ context.Context, s *service.Service, _ *testConfig) error {
		run, st := worker(&recorder{}, "p")
		s.Add("p", run, st)
		return nil
	})
	cfg := newConfig()
	cfg.Admin.Listen = s.AdminAddr()
	err := service.Run(context.Background(), "second", cfg, func(context.Context, *service.Service, *testConfig) error { return nil },
		service.WithLogger(zaptest.NewLogger(t)))
	require.ErrorContains(t, err, "admin.listen "+s.AdminAddr())
	require.NoError(t, stop())
}

func TestVersion(t *testing.T) {
	v, r := service.Version()
	require.NotEmpty(t, v)
	require.NotEmpty(t, r)
	require.Equal(t, "VIGIE_WRITER", service.EnvPrefix("writer"))
	require.Equal(t, "VIGIE_INGEST_CREDENTIALS", service.EnvPrefix("ingest-credentials"))
	require.True(t, regexp.MustCompile(`^[a-z]`).MatchString(strings.ToLower(v)))
}

// TestReadinessMetrics: vigie_ready and vigie_check_ok follow the checks on their own tick,
// with nothing polling /readyz, and on each /readyz; a shutdown shows as vigie_ready 0.
func TestReadinessMetrics(t *testing.T) {
	defer service.SetReadinessInterval(50 * time.Millisecond)()
	var depDown atomic.Bool
	var duringStop string
	var s *service.Service
	build := func(_ context.Context, svc *service.Service, _ *testConfig) error {
		s = svc
		svc.AddCheck("kafka", func(context.Context) error { return nil })
		svc.AddCheck("clickhouse", func(context.Context) error {
			if depDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		})
		var r recorder
		run, stop := worker(&r, "source")
		svc.Add("source", run, func(ctx context.Context) error {
			_, duringStop = get(t, "http://"+s.AdminAddr()+"/metrics")
			return stop(ctx)
		})
		return nil
	}
	_, stop := start(t, "ready-svc", newConfig(), build)
	metrics := func() string {
		_, body := get(t, "http://"+s.AdminAddr()+"/metrics")
		return body
	}
	const (
		ready       = "\nvigie_ready 1\n"
		notReady    = "\nvigie_ready 0\n"
		kafkaOK     = "\nvigie_check_ok{check=\"kafka\"} 1\n"
		clickhouse1 = "\nvigie_check_ok{check=\"clickhouse\"} 1\n"
		clickhouse0 = "\nvigie_check_ok{check=\"clickhouse\"} 0\n"
	)
	has := func(want ...string) func() bool {
		return func() bool {
			body := metrics()
			for _, w := range want {
				if !strings.Contains(body, w) {
					return false
				}
			}
			return true
		}
	}
	require.Eventually(t, has(ready, kafkaOK, clickhouse1), 5*time.Second, 20*time.Millisecond, "ready once started")

	// The dependency goes down: the tick sees it, nobody asked /readyz.
	depDown.Store(true)
	require.Eventually(t, has(notReady, kafkaOK, clickhouse0), 5*time.Second, 20*time.Millisecond, "not ready by the tick")
	depDown.Store(false)
	require.Eventually(t, has(ready, clickhouse1), 5*time.Second, 20*time.Millisecond, "ready again by the tick")

	require.NoError(t, stop())
	require.Contains(t, duringStop, notReady, "vigie_ready 0 as soon as shutdown begins")
}

// TestReadyzSetsReadinessMetrics: each /readyz evaluation updates the gauges at once.
func TestReadyzSetsReadinessMetrics(t *testing.T) {
	defer service.SetReadinessInterval(time.Hour)()
	var depDown atomic.Bool
	build := func(_ context.Context, s *service.Service, _ *testConfig) error {
		s.AddCheck("clickhouse", func(context.Context) error {
			if depDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		})
		run, stop := worker(&recorder{}, "source")
		s.Add("source", run, stop)
		return nil
	}
	s, stop := start(t, "readyz-svc", newConfig(), build)
	base := "http://" + s.AdminAddr()
	depDown.Store(true)
	code, _ := get(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	_, body := get(t, base+"/metrics")
	require.Contains(t, body, "\nvigie_ready 0\n")
	require.Contains(t, body, "\nvigie_check_ok{check=\"clickhouse\"} 0\n")
	depDown.Store(false)
	code, _ = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)
	_, body = get(t, base+"/metrics")
	require.Contains(t, body, "\nvigie_ready 1\n")
	require.Contains(t, body, "\nvigie_check_ok{check=\"clickhouse\"} 1\n")
	require.NoError(t, stop())
}
