package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/lifecycle"
	"github.com/vigie/vigie/pkg/telemetry"
)

// Service is what a service's build function receives: the shared plumbing, and the methods
// through which build declares its parts, readiness checks, reload hooks and closers.
type Service struct {
	// Name is the service's name, e.g. "writer".
	Name string
	// Logger is the root logger, with service=<name>; components take Logger.Named("<component>").
	Logger *zap.Logger
	// Registry is served on /metrics. Shared packages register their unprefixed vigie_*
	// metrics here; the service's own go through Registerer.
	Registry *prometheus.Registry

	ready *readiness
	admin *adminServer

	mu      sync.Mutex
	started bool // build returned: no more parts
	parts   []servicePart
	reloads []reloadHook
	closers []func() error

	reloadMu      sync.Mutex // one reload at a time
	reloadsMetric *prometheus.CounterVec
}

type servicePart struct {
	name      string
	run, stop func(ctx context.Context) error
}

type reloadHook struct {
	name string
	fn   func(ctx context.Context) error
}

// Registerer is for the service's own metrics: it prefixes their names with vigie_<name>_
// (dashes in the name become underscores), so the writer's rows_total is
// vigie_writer_rows_total.
func (s *Service) Registerer() prometheus.Registerer {
	return prometheus.WrapRegistererWithPrefix(metricPrefix(s.Name), s.Registry)
}

// AddCheck adds a named readiness check, run on each /readyz request and every 5 s, within
// 2 s each time. The service is ready only while every check returns nil; /readyz lists
// each by name, and vigie_check_ok{check="<name>"} is 1 while it passes.
func (s *Service) AddCheck(name string, c func(ctx context.Context) error) {
	s.ready.add(name, c)
}

// Add adds a long-running part. run does the work until stop asks it to finish (stop
// accepting work, finish what is in flight) and then returns; stop may be nil when
// cancelling run's context is how it stops. Parts start together once build returned and
// are stopped one after the other in the order they were added, each waited for before the
// next: add the source first (HTTP server, consumer) and the sink last. A part whose run
// returns, with or without an error, shuts the service down. Add must be called from build.
func (s *Service) Add(name string, run func(ctx context.Context) error, stop func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic(fmt.Sprintf("service: Add(%q) after build returned", name))
	}
	s.parts = append(s.parts, servicePart{name: name, run: run, stop: stop})
}

// OnReload adds a hook run on SIGHUP (and Reload), after the hooks added before it. A hook
// reloads what it can (reference data, rules, credentials); when it fails it keeps what it
// had and returns why: the error is logged and counted, and never ends the process.
func (s *Service) OnReload(name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloads = append(s.reloads, reloadHook{name: name, fn: fn})
}

// OnClose adds a closer (a ClickHouse connection, a producer), run once every part has
// stopped, or when build fails; closers run in the reverse order of adding, as defers do.
// Call it right after opening what it closes.
func (s *Service) OnClose(fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, fn)
}

// AdminMux is the admin server's mux, for endpoints particular to the service.
func (s *Service) AdminMux() *http.ServeMux { return s.admin.mux }

// AdminAddr is the address the admin server listens on (known from build on; useful with
// port 0).
func (s *Service) AdminAddr() string { return s.admin.addr() }

// Ready returns nil when /readyz would answer 200, else why not (tests).
func (s *Service) Ready(ctx context.Context) error { return s.ready.err(ctx) }

// Reload runs the reload hooks in order, as SIGHUP does, and returns their errors (tests).
func (s *Service) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	hooks := slices.Clone(s.reloads)
	s.mu.Unlock()
	var errs []error
	for _, h := range hooks {
		start := time.Now()
		err := h.fn(ctx)
		took := time.Since(start)
		if err != nil {
			s.reloadsMetric.WithLabelValues(h.name, "error").Inc()
			// What stays in force is the hook's to say (most keep their previous state).
			s.Logger.Error("reload failed", zap.String("hook", h.name), zap.Duration("took", took), zap.Error(err))
			errs = append(errs, fmt.Errorf("reload %s: %w", h.name, err))
			continue
		}
		s.reloadsMetric.WithLabelValues(h.name, "ok").Inc()
		s.Logger.Info("reloaded", zap.String("hook", h.name), zap.Duration("took", took))
	}
	return errors.Join(errs...)
}

func (s *Service) close() error {
	s.mu.Lock()
	closers := slices.Clone(s.closers)
	s.closers = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range slices.Backward(closers) {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Option adjusts Run (tests).
type Option func(*options)

type options struct {
	logger   *zap.Logger
	registry *prometheus.Registry
	started  func(*Service)
}

// WithLogger makes the service log to logger (e.g. zaptest.NewLogger) instead of the one
// the log block describes.
func WithLogger(logger *zap.Logger) Option { return func(o *options) { o.logger = logger } }

// WithRegistry makes the service use reg as its registry, as it is (no Go or process
// collectors are added; vigie_build_info is, once).
func WithRegistry(reg *prometheus.Registry) Option { return func(o *options) { o.registry = reg } }

// WithStarted calls fn once every part started and the service is marked ready (it must not
// block): a test learns the service runs and gets its Service (AdminAddr, Reload).
func WithStarted(fn func(*Service)) Option { return func(o *options) { o.started = fn } }

// configError is a configuration that Validate refused: Main exits 2 for it.
type configError struct{ err error }

func (e *configError) Error() string { return "config: " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Run is Main without flags, environment and exit: it validates cfg, builds the logger
// and registry, serves the admin port, calls build, runs the parts until ctx ends or SIGINT /
// SIGTERM arrives (or a part returns), drains them in order, runs the closers and returns.
// SIGHUP runs the reload hooks. Tests run a whole service in-process with it.
func Run[C Config](ctx context.Context, name string, cfg C, build func(ctx context.Context, s *Service, cfg C) error, opts ...Option) (err error) {
	// SIGHUP's default action ends the process: take it over before anything else.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	if !validName.MatchString(name) {
		return fmt.Errorf("service: name %q is not lowercase letters, digits and dashes", name)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// The whole configuration, not only Base: tests take the same path as Main (whose
	// config.Load validated it already; validating twice is cheap).
	if err := cfg.Validate(); err != nil {
		return &configError{err}
	}
	b := cfg.base()
	if err := b.Validate(); err != nil {
		return &configError{err}
	}
	logger := o.logger
	if logger == nil {
		if logger, err = telemetry.NewLogger(b.Log, name); err != nil {
			return &configError{err}
		}
		defer func() { _ = logger.Sync() }()
	} else {
		logger = logger.With(zap.String("service", name))
	}
	reg := o.registry
	if reg == nil {
		reg = telemetry.NewRegistry()
	}
	ver, rev := Version()
	if err := registerOnce(reg, buildInfo(ver, rev)); err != nil {
		return err
	}
	s := &Service{Name: name, Logger: logger, Registry: reg, ready: newReadiness()}
	s.reloadsMetric = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricPrefix(name) + "reloads_total",
		Help: "Reload hook runs (SIGHUP), by hook and result (ok, error).",
	}, []string{"hook", "result"})
	if err := registerOnce(reg, s.reloadsMetric); err != nil {
		return err
	}
	if err := s.ready.register(reg); err != nil {
		return err
	}

	if s.admin, err = newAdminServer(b.Admin.Listen, reg, s.ready); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.admin.serve() }()
	// The checks run by themselves from now until Run returns (vigie_ready, vigie_check_ok).
	tickCtx, stopTicks := context.WithCancel(context.WithoutCancel(ctx))
	var ticking sync.WaitGroup
	ticking.Go(func() { s.ready.every(tickCtx, readinessInterval) })
	defer ticking.Wait()
	defer stopTicks()
	logger.Info("starting", zap.String("version", ver), zap.String("revision", rev),
		zap.String("go_version", runtime.Version()), zap.String("admin", s.AdminAddr()))

	if err := build(ctx, s, cfg); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, s.admin.shutdown(shutdownCtx), <-served, s.close())
	}
	s.mu.Lock()
	s.started = true
	parts := slices.Clone(s.parts)
	s.mu.Unlock()

	g := lifecycle.New(logger, b.ShutdownTimeout)
	for _, p := range parts {
		g.Add(p.name, p.run, p.stop)
	}
	// Last, so that /metrics and /readyz answer during the drain.
	g.Add("admin", func(context.Context) error { return <-served }, s.admin.shutdown)

	reloadCtx, stopReloads := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReloads()
	g.OnStart(func() {
		s.ready.setState(stateReady)
		logger.Info("started", zap.Int("parts", len(parts)))
		if o.started != nil {
			o.started(s)
		}
	})
	g.OnShutdown(func() {
		s.ready.setState(stateStopping)
		stopReloads()
	})
	var reloading sync.WaitGroup
	reloading.Go(func() {
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading")
				_ = s.Reload(reloadCtx) // each failure is logged by Reload
			}
		}
	})
	runErr := g.Run(ctx)
	stopReloads()
	reloading.Wait()
	if err := errors.Join(runErr, s.close()); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// metricPrefix is vigie_<name>_ with dashes as underscores.
func metricPrefix(name string) string {
	return "vigie_" + strings.ReplaceAll(name, "-", "_") + "_"
}

func buildInfo(version, revision string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "vigie_build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": runtime.Version()},
	})
	g.Set(1)
	return g
}

// registerOnce registers c, accepting an identical collector already there (a registry
// reused by tests).
func registerOnce(reg prometheus.Registerer, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil
		}
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}
