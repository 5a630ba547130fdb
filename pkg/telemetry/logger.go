// Package telemetry gives every service the same logs and metrics: a zap logger (JSON in
// production, console in development) and a Prometheus registry with the Go and process
// collectors. pkg/service builds both for a service and serves the admin endpoints.
package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LogConfig selects the log format and level.
type LogConfig struct {
	// Format is "json" (production) or "console" (development).
	Format string `yaml:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// DefaultLogConfig logs JSON at info level.
func DefaultLogConfig() LogConfig { return LogConfig{Format: "json", Level: "info"} }

// Validate names the bad field.
func (c LogConfig) Validate() error {
	if c.Format != "json" && c.Format != "console" {
		return fmt.Errorf("log.format: %q is not json or console", c.Format)
	}
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	return nil
}

// NewLogger builds the service's root logger; components take it.Named("<component>").
func NewLogger(c LogConfig, service string) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var zc zap.Config
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
		// Sampling would drop repeated error lines exactly when an operator needs them.
		zc.Sampling = nil
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	logger, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return logger.With(zap.String("service", service)), nil
}

// NewRegistry returns a registry with the Go runtime and process collectors, so that every
// service exposes its memory, goroutines and CPU the same way.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
