package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/refwatch"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/ingest/internal/auth"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
	"github.com/vigie/vigie/services/ingest/internal/follow"
	"github.com/vigie/vigie/services/ingest/internal/inflight"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// Option adjusts the wiring (tests).
type Option func(*options)

type options struct {
	transport kafkago.RoundTripper
	listener  net.Listener
}

// WithTransport makes the Kafka producers use t, e.g. a transport whose connections a test
// can cut to simulate a Kafka outage.
func WithTransport(t kafkago.RoundTripper) Option {
	return func(o *options) { o.transport = t }
}

// WithListener serves the events API on ln instead of listening on cfg.Listen, so that a
// test knows the address before the service starts.
func WithListener(ln net.Listener) Option {
	return func(o *options) { o.listener = ln }
}

// Build wires ingest into s; service.Main and service.Run call it.
func Build(ctx context.Context, s *service.Service, cfg *Config) error {
	return build(ctx, s, cfg, options{})
}

// Builder returns Build with options (tests).
func Builder(opts ...Option) func(context.Context, *service.Service, *Config) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return func(ctx context.Context, s *service.Service, cfg *Config) error { return build(ctx, s, cfg, o) }
}

// build loads keys, credentials and the reference data (failing closed on each), creates the producers and
// the follower of the raw topic, and listens. The parts stop in this order: the events API
// answers the requests in flight, the follower stops, then the producers close.
func build(_ context.Context, s *service.Service, cfg *Config, o options) error {
	keys, err := loadKeys(cfg.Pseudonym)
	if err != nil {
		return err
	}
	pipe, err := pipeline.New(keys.Active(), pipeline.Bounds{ClockSkew: cfg.ClockSkew, Retention: cfg.Retention})
	if err != nil {
		return err
	}
	ref, err := refwatch.Open(s, cfg.Reference)
	if err != nil {
		return err
	}
	pipe.CheckZones(ref.Current)
	store, err := auth.NewStore(cfg.CredentialsFile, s.Logger, s.Registerer())
	if err != nil {
		return err
	}
	s.OnReload("credentials", store.Reload)
	s.AddCheck("credentials", store.Ready)

	raw, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.Raw)
	if err != nil {
		return err
	}
	s.OnClose(raw.Close)
	dlq, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.DLQ)
	if err != nil {
		return err
	}
	s.OnClose(dlq.Close)
	if o.transport != nil {
		raw.SetTransport(o.transport)
		dlq.SetTransport(o.transport)
	}
	conn := cfg.Kafka
	s.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, conn) })

	// The dedup window lives in the raw topic: rebuilt from its last window at start, then
	// following it (internal/follow).
	seen := dedup.New(cfg.DedupWindow, time.Now)
	follower, err := follow.New(cfg.Kafka, cfg.Topics.Raw, cfg.DedupWindow, cfg.DedupFollow, seen, s.Logger, s.Registerer(), s.Registry)
	if err != nil {
		return err
	}
	s.AddCheck("dedup_window", follower.Ready)

	limiter := inflight.New(cfg.Limits.MaxRequestsInFlight, cfg.Limits.MaxBytesInFlight)
	trims := promauto.With(s.Registerer()).NewCounter(prometheus.CounterOpts{Name: "memory_trims_total",
		Help: "Times the memory of a burst of request bodies (at least a quarter of limits.max_bytes_in_flight at once) was given back to the system once the burst was over."})
	trimmer := inflight.NewTrimmer(limiter, time.Second, cfg.Limits.MaxBytesInFlight/4, trims.Inc)

	srv := server.New(server.Options{
		Limits:         batch.Limits{MaxBodyBytes: cfg.Limits.MaxBodyBytes, MaxEvents: cfg.Limits.MaxEvents, MaxEventBytes: cfg.Limits.MaxEventBytes},
		MaxWireBytes:   cfg.Limits.MaxWireBytes,
		RatePerSensor:  cfg.Rate.EventsPerSecond,
		Burst:          cfg.Rate.Burst,
		ProduceTimeout: cfg.ProduceTimeout,
		RetryAfter:     cfg.RetryAfter,
		RawTopic:       cfg.Topics.Raw,
		DLQTopic:       cfg.Topics.DLQ,
		Rebuilt:        follower.Rebuilt,
		InFlight:       limiter,
		AdmissionWait:  cfg.Limits.AdmissionWait,
		ReadTimeout:    cfg.Limits.ReadTimeout,
	}, store, pipe, seen, raw, dlq, s.Logger, s.Registerer())

	api := &eventsAPI{
		logger: s.Logger,
		tls:    cfg.TLS,
		http: &http.Server{
			Handler:           srv.Handler(),
			ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout,
			ReadTimeout:       cfg.Limits.ReadTimeout,
			// From the headers read: the request read, its events processed and produced.
			WriteTimeout:   cfg.Limits.ReadTimeout + cfg.ProduceTimeout + 10*time.Second,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       zap.NewStdLog(s.Logger.Named("http")),
		},
		serving: make(chan struct{}),
	}
	if cfg.TLS.CertFile != "" {
		if api.http.TLSConfig, err = tlsConfig(cfg.TLS); err != nil {
			return err
		}
	}
	ln := o.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	api.ln = &startedListener{Listener: ln, started: api.serving}
	s.Add("events_api", api.run, api.stop)
	s.Add("dedup_follow", follower.Run, follower.Stop)
	s.Add("memory_trim", trimmer.Run, nil)
	return nil
}

// eventsAPI is the HTTP server of POST /v1/events as a part of the service.
type eventsAPI struct {
	logger  *zap.Logger
	tls     TLSConfig
	http    *http.Server
	ln      net.Listener
	serving chan struct{}
}

func (a *eventsAPI) run(context.Context) error {
	a.logger.Info("events api listening", zap.String("addr", a.ln.Addr().String()), zap.Bool("tls", a.http.TLSConfig != nil))
	var err error
	if a.http.TLSConfig != nil {
		err = a.http.ServeTLS(a.ln, a.tls.CertFile, a.tls.KeyFile)
	} else {
		err = a.http.Serve(a.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// stop answers the requests in flight, then returns.
func (a *eventsAPI) stop(ctx context.Context) error {
	// A shutdown that came before Serve would close the listener with connections the
	// kernel already accepted on it, unanswered: wait until serving.
	select {
	case <-a.serving:
	case <-ctx.Done():
	}
	return a.http.Shutdown(ctx)
}

// startedListener closes started on the first Accept, i.e. once the server serves.
type startedListener struct {
	net.Listener
	once    sync.Once
	started chan struct{}
}

func (l *startedListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.started) })
	return l.Listener.Accept()
}

func loadKeys(c PseudonymConfig) (*pseudonym.Keyring, error) {
	if c.KeyFile != "" {
		return pseudonym.LoadFile(c.KeyFile)
	}
	return pseudonym.FromEnv(os.Getenv, c.DefaultCountryCode)
}

func tlsConfig(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file %s: no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
