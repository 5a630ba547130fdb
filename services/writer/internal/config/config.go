// Package config is the writer's configuration: defaults, then a YAML file, then VIGIE_WRITER_*
// environment variables, then flags (pkg/config).
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/writer/internal/consume"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// EnvPrefix prefixes the writer's environment variables.
const EnvPrefix = "VIGIE_WRITER"

// Config is the writer's whole configuration.
type Config struct {
	Log telemetry.LogConfig `yaml:"log"`
	// AdminAddr serves /metrics, /healthz and /readyz.
	AdminAddr  string         `yaml:"admin_addr"`
	Kafka      consume.Config `yaml:"kafka"`
	ClickHouse sink.Config    `yaml:"clickhouse"`
	// DLQ is the dead-letter producer; its brokers are kafka.brokers.
	DLQ kafka.ProducerConfig `yaml:"dlq"`
	// MemoryLimitMB is the Go runtime's soft memory limit (debug.SetMemoryLimit): the
	// garbage collector works harder as the heap nears it. 0 leaves GOMEMLIMIT in charge.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// ShutdownTimeout bounds the graceful shutdown, in-flight inserts included.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Default returns the writer's defaults.
func Default() Config {
	dlq := kafka.DefaultProducerConfig()
	dlq.Brokers = nil
	return Config{
		Log:             telemetry.DefaultLogConfig(),
		AdminAddr:       "127.0.0.1:9464",
		Kafka:           consume.DefaultConfig(),
		ClickHouse:      sink.DefaultConfig(),
		DLQ:             dlq,
		MemoryLimitMB:   280,
		ShutdownTimeout: 30 * time.Second,
	}
}

// Producer returns the dead-letter producer's configuration, on the consumer's brokers.
func (c Config) Producer() kafka.ProducerConfig {
	p := c.DLQ
	p.Brokers = c.Kafka.Brokers
	return p
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if c.AdminAddr == "" {
		return errors.New("admin_addr: must not be empty")
	}
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	if err := c.ClickHouse.Validate("clickhouse"); err != nil {
		return err
	}
	if len(c.DLQ.Brokers) > 0 {
		return errors.New("dlq.brokers: not settable, the dead-letter topic lives on kafka.brokers")
	}
	if err := c.Producer().Validate("dlq"); err != nil {
		return err
	}
	if c.MemoryLimitMB < 0 {
		return errors.New("memory_limit_mb: must not be negative")
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown_timeout: must be positive")
	}
	return nil
}
