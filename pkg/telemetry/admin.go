package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// NewRegistry returns a registry with the Go runtime and process collectors, so that every
// service exposes its memory, goroutines and CPU the same way.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether a dependency is usable; a nil error means ready.
type Check func(ctx context.Context) error

// Readiness is what /readyz answers: not ready until MarkReady, not ready again after
// MarkNotReady (at shutdown), and not ready while any registered check fails.
type Readiness struct {
	ready  atomic.Bool
	mu     sync.Mutex
	checks map[string]Check
}

// MarkReady says the service finished starting.
func (r *Readiness) MarkReady() { r.ready.Store(true) }

// MarkNotReady says the service is stopping, so load balancers stop sending work.
func (r *Readiness) MarkNotReady() { r.ready.Store(false) }

// AddCheck registers a dependency check run on each /readyz request.
func (r *Readiness) AddCheck(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]Check{}
	}
	r.checks[name] = c
}

// Ready returns nil when the service is ready, else why not.
func (r *Readiness) Ready(ctx context.Context) error {
	if !r.ready.Load() {
		return errors.New("not started or stopping")
	}
	r.mu.Lock()
	checks := make(map[string]Check, len(r.checks))
	for k, v := range r.checks {
		checks[k] = v
	}
	r.mu.Unlock()
	for name, c := range checks {
		if err := c(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// AdminServer serves /metrics, /healthz and /readyz on the admin address.
type AdminServer struct {
	srv      *http.Server
	listener net.Listener
	logger   *zap.Logger
}

// NewAdminServer listens on addr (e.g. 127.0.0.1:19101; port 0 picks a free port). Extra
// handlers, such as pprof, can be added to Mux before Run.
func NewAdminServer(addr string, reg *prometheus.Registry, readiness *Readiness, logger *zap.Logger) (*AdminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := readiness.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return &AdminServer{
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		listener: ln,
		logger:   logger.Named("admin"),
	}, nil
}

// Addr is the address the server listens on.
func (a *AdminServer) Addr() string { return a.listener.Addr().String() }

// Mux returns the server's handler for adding endpoints.
func (a *AdminServer) Mux() *http.ServeMux { return a.srv.Handler.(*http.ServeMux) }

// Run serves until Shutdown.
func (a *AdminServer) Run(context.Context) error {
	a.logger.Info("admin server listening", zap.String("addr", a.Addr()))
	if err := a.srv.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight.
func (a *AdminServer) Shutdown(ctx context.Context) error {
	return a.srv.Shutdown(ctx)
}
