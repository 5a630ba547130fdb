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
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/lifecycle"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/ingest/internal/auth"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// App is a wired ingest service, listening but not yet serving.
type App struct {
	cfg       Config
	logger    *zap.Logger
	readiness *telemetry.Readiness
	admin     *telemetry.AdminServer
	store     *auth.Store
	raw, dlq  *kafkago.Writer
	http      *http.Server
	listener  net.Listener
	closed    chan struct{}
}

// Option adjusts the wiring (tests).
type Option func(*App)

// WithTransport makes the Kafka writers use t, e.g. a transport whose connections a test
// can cut to simulate a Kafka outage.
func WithTransport(t kafkago.RoundTripper) Option {
	return func(a *App) { a.raw.Transport, a.dlq.Transport = t, t }
}

// New loads keys and credentials, creates the topics if configured, and listens.
func New(ctx context.Context, cfg Config, logger *zap.Logger, reg *prometheus.Registry, opts ...Option) (*App, error) {
	keys, err := loadKeys(cfg.Pseudonym)
	if err != nil {
		return nil, err
	}
	pipe, err := pipeline.New(keys.Active())
	if err != nil {
		return nil, err
	}
	store, err := auth.NewStore(cfg.CredentialsFile, cfg.CredentialsReload, logger, reg)
	if err != nil {
		return nil, err
	}
	if cfg.Topics.Create {
		specs := []kafka.TopicSpec{
			{Name: cfg.Topics.Raw, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
			{Name: cfg.Topics.DLQ, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		}
		if err := kafka.EnsureTopics(ctx, cfg.Kafka.Brokers, specs...); err != nil {
			return nil, fmt.Errorf("create topics: %w", err)
		}
	}
	raw, err := kafka.NewWriter(cfg.Kafka, cfg.Topics.Raw)
	if err != nil {
		return nil, err
	}
	dlq, err := kafka.NewWriter(cfg.Kafka, cfg.Topics.DLQ)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, readiness: &telemetry.Readiness{}, store: store, raw: raw, dlq: dlq, closed: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}
	brokers := cfg.Kafka.Brokers
	a.readiness.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, brokers) })

	srv := server.New(server.Options{
		Limits:         batch.Limits{MaxBodyBytes: cfg.Limits.MaxBodyBytes, MaxEvents: cfg.Limits.MaxEvents, MaxEventBytes: cfg.Limits.MaxEventBytes},
		MaxWireBytes:   cfg.Limits.MaxWireBytes,
		RatePerSensor:  cfg.Rate.EventsPerSecond,
		Burst:          cfg.Rate.Burst,
		ProduceTimeout: cfg.ProduceTimeout,
		RetryAfter:     cfg.RetryAfter,
		RawTopic:       cfg.Topics.Raw,
		DLQTopic:       cfg.Topics.DLQ,
	}, store, pipe, dedup.New(cfg.DedupWindow, time.Now), raw, dlq, logger, reg)

	a.http = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      cfg.ProduceTimeout + 60*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}
	if cfg.TLS.CertFile != "" {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		a.http.TLSConfig = tc
	}
	a.admin, err = telemetry.NewAdminServer(cfg.AdminListen, reg, a.readiness, logger)
	if err != nil {
		return nil, err
	}
	a.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = a.admin.Shutdown(ctx)
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	return a, nil
}

// Addr is the events API address.
func (a *App) Addr() string { return a.listener.Addr().String() }

// AdminAddr is the admin server address.
func (a *App) AdminAddr() string { return a.admin.Addr() }

// Run serves until ctx ends or SIGINT/SIGTERM, then shuts down in order: stop taking
// requests and answer those in flight, stop reloading credentials, close the Kafka writers,
// stop the admin server.
func (a *App) Run(ctx context.Context) error {
	g := lifecycle.New(a.logger, a.cfg.ShutdownTimeout)
	serving := make(chan struct{})
	ln := &startedListener{Listener: a.listener, started: serving}
	g.Add("http", func(context.Context) error {
		a.readiness.MarkReady()
		a.logger.Info("events api listening", zap.String("addr", a.Addr()), zap.Bool("tls", a.http.TLSConfig != nil))
		var err error
		if a.http.TLSConfig != nil {
			err = a.http.ServeTLS(ln, a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile)
		} else {
			err = a.http.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}, func(ctx context.Context) error {
		a.readiness.MarkNotReady()
		// A shutdown that came before Serve would close the listener with connections the
		// kernel already accepted on it, unanswered: wait until serving.
		select {
		case <-serving:
		case <-ctx.Done():
		}
		return a.http.Shutdown(ctx)
	})
	g.Add("credentials", a.store.Run, nil)
	g.Add("kafka", func(context.Context) error {
		<-a.closed
		return nil
	}, func(context.Context) error {
		defer close(a.closed)
		return errors.Join(a.raw.Close(), a.dlq.Close())
	})
	g.Add("admin", a.admin.Run, a.admin.Shutdown)
	return g.Run(ctx)
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
