package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// checkTimeout bounds each readiness check: a dependency that hangs is not ready.
const checkTimeout = 2 * time.Second

// readinessInterval is how often the checks run by themselves, so that vigie_ready and
// vigie_check_ok follow the dependencies without anything polling /readyz (tests shorten it).
var readinessInterval = 5 * time.Second

// namedCheck is one readiness check.
type namedCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readiness is what /readyz answers, and what vigie_ready and vigie_check_ok export.
type readiness struct {
	state  atomic.Value // string: "starting", "ready", "stopping"
	mu     sync.Mutex
	checks []namedCheck

	// The gauges, set by each evaluation; seq orders evaluations so that one that started
	// earlier and finished later does not overwrite a newer result.
	gaugeMu    sync.Mutex
	seq, shown uint64
	ready      prometheus.Gauge
	checkOK    *prometheus.GaugeVec
	kick       chan struct{} // an evaluation wanted now (the service became ready)
}

func newReadiness() *readiness {
	r := &readiness{
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigie_ready",
			Help: "1 while /readyz would answer 200 (started, not stopping, every check passing), else 0; evaluated on each /readyz and every 5 s.",
		}),
		checkOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigie_check_ok",
			Help: "1 while the named readiness check passes, else 0; evaluated on each /readyz and every 5 s.",
		}, []string{"check"}),
		kick: make(chan struct{}, 1),
	}
	r.state.Store(stateStarting)
	return r
}

// register puts the gauges on reg, or takes over the ones already there (a registry reused
// by tests).
func (r *readiness) register(reg prometheus.Registerer) error {
	if err := reg.Register(r.ready); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			return fmt.Errorf("register metrics: %w", err)
		}
		r.ready = are.ExistingCollector.(prometheus.Gauge)
	}
	if err := reg.Register(r.checkOK); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			return fmt.Errorf("register metrics: %w", err)
		}
		r.checkOK = are.ExistingCollector.(*prometheus.GaugeVec)
	}
	return nil
}

// setState moves to state: anything but ready shows as vigie_ready 0 at once; ready asks
// every for an evaluation without waiting for the next tick.
func (r *readiness) setState(state string) {
	r.state.Store(state)
	if state == stateReady {
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return
	}
	r.gaugeMu.Lock()
	r.ready.Set(0)
	r.gaugeMu.Unlock()
}

// every evaluates the checks every interval, and when kicked, until ctx ends.
func (r *readiness) every(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.run(ctx)
		case <-r.kick:
			r.run(ctx)
		}
	}
}

const (
	stateStarting = "starting"
	stateReady    = "ready"
	stateStopping = "stopping"
)

func (r *readiness) add(name string, c func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, namedCheck{name: name, check: c})
}

// run runs every check concurrently, each within checkTimeout, and returns one line per
// check in the order they were added, and whether the service is ready.
// Each run sets vigie_check_ok per check and vigie_ready.
func (r *readiness) run(ctx context.Context) ([]string, bool) {
	r.mu.Lock()
	checks := append([]namedCheck(nil), r.checks...)
	r.mu.Unlock()
	r.gaugeMu.Lock()
	r.seq++
	seq := r.seq
	r.gaugeMu.Unlock()
	lines := make([]string, len(checks))
	passed := make([]bool, len(checks))
	ok := r.state.Load() == stateReady
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			if err := c.check(cctx); err != nil {
				lines[i] = c.name + ": error: " + oneLine(err.Error())
				return
			}
			passed[i] = true
			lines[i] = c.name + ": ok"
		})
	}
	wg.Wait()
	for _, p := range passed {
		ok = ok && p
	}
	r.gaugeMu.Lock()
	defer r.gaugeMu.Unlock()
	if seq > r.shown {
		r.shown = seq
		for i, c := range checks {
			r.checkOK.WithLabelValues(c.name).Set(b2f(passed[i]))
		}
		// The state is read again: a shutdown that began during the checks shows at once.
		r.ready.Set(b2f(ok && r.state.Load() == stateReady))
	}
	return lines, ok
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// err is run as an error: nil when ready, else the state and the failing checks.
func (r *readiness) err(ctx context.Context) error {
	lines, ok := r.run(ctx)
	if ok {
		return nil
	}
	var bad []string
	if s := r.state.Load().(string); s != stateReady {
		bad = append(bad, s)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, ": ok") {
			bad = append(bad, l)
		}
	}
	return errors.New("not ready: " + strings.Join(bad, "; "))
}

func (r *readiness) serveHTTP(w http.ResponseWriter, req *http.Request) {
	lines, ok := r.run(req.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	status, head := http.StatusOK, "ready"
	if !ok {
		status, head = http.StatusServiceUnavailable, "not ready"
		if s := r.state.Load().(string); s != stateReady {
			head += ": " + s
		}
	}
	w.WriteHeader(status)
	fmt.Fprintln(w, head)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// adminServer serves /metrics, /healthz, /readyz and /debug/pprof/ on the admin port.
type adminServer struct {
	srv *http.Server
	ln  net.Listener
	mux *http.ServeMux
}

func newAdminServer(addr string, reg *prometheus.Registry, ready *readiness) (*adminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", ready.serveHTTP)
	// On this mux explicitly: net/http/pprof also registers on http.DefaultServeMux, which
	// nothing serves.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &adminServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:  ln,
		mux: mux,
	}, nil
}

func (a *adminServer) addr() string { return a.ln.Addr().String() }

// serve serves until shutdown.
func (a *adminServer) serve() error {
	if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}

func (a *adminServer) shutdown(ctx context.Context) error {
	if err := a.srv.Shutdown(ctx); err != nil {
		_ = a.srv.Close()
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	return nil
}
