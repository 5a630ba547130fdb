// Package app wires the correlator: configuration, rules, ClickHouse, Kafka, the streaming
// consumer, the scheduler, the alert sinks and the admin server, under one lifecycle.
package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/sched"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// EnvPrefix prefixes the correlator's environment variables.
const EnvPrefix = "VIGIE_CORRELATOR"

// Config is the correlator's configuration.
type Config struct {
	Log       telemetry.LogConfig `yaml:"log"`
	AdminAddr string              `yaml:"admin_addr"`
	// RulesDir is a directory of rule files; empty means the rules built into the binary.
	RulesDir string `yaml:"rules_dir"`
	// ReferenceDir is a reference data directory; empty means the built-in data.
	ReferenceDir string `yaml:"reference_dir"`
	// Streaming and Scheduled switch the two evaluation modes (both on by default).
	Streaming bool `yaml:"streaming"`
	Scheduled bool `yaml:"scheduled"`

	Consumer  stream.ConsumerConfig `yaml:"consumer"`
	Producer  kafka.ProducerConfig  `yaml:"producer"`
	Alerts    TopicConfig           `yaml:"alerts"`
	Scheduler sched.Config          `yaml:"scheduler"`

	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// TopicConfig is the alerts topic the correlator creates when it is missing.
type TopicConfig struct {
	Topic             string `yaml:"topic"`
	Partitions        int    `yaml:"partitions"`
	ReplicationFactor int    `yaml:"replication_factor"`
}

// ClickHouseConfig says where ClickHouse is.
type ClickHouseConfig struct {
	Addr         []string      `yaml:"addr"`
	Database     string        `yaml:"database"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	MaxOpenConns int           `yaml:"max_open_conns"`
	// Migrate applies the schema migrations at start (off in production, where a migrate
	// job owns the schema).
	Migrate bool `yaml:"migrate"`
}

// DefaultConfig suits the local infrastructure of `make up`.
func DefaultConfig() Config {
	return Config{
		Log: telemetry.DefaultLogConfig(), AdminAddr: "127.0.0.1:19107",
		Streaming: true, Scheduled: true,
		Consumer:  stream.DefaultConsumerConfig(),
		Producer:  kafka.DefaultProducerConfig(),
		Alerts:    TopicConfig{Topic: alert.Topic, Partitions: 3, ReplicationFactor: 1},
		Scheduler: sched.DefaultConfig(),
		ClickHouse: ClickHouseConfig{
			Addr: []string{"127.0.0.1:19000"}, Database: "vigie", Username: "default",
			DialTimeout: 5 * time.Second, MaxOpenConns: 8,
		},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if c.AdminAddr == "" {
		return errors.New("admin_addr: must not be empty")
	}
	if !c.Streaming && !c.Scheduled {
		return errors.New("streaming, scheduled: at least one evaluation mode must be on")
	}
	if err := c.Consumer.Validate("consumer"); err != nil {
		return err
	}
	if err := c.Producer.Validate("producer"); err != nil {
		return err
	}
	if c.Alerts.Topic == "" || c.Alerts.Partitions <= 0 || c.Alerts.ReplicationFactor <= 0 {
		return errors.New("alerts: topic, positive partitions and replication_factor are required")
	}
	if err := c.Scheduler.Validate("scheduler"); err != nil {
		return err
	}
	if len(c.ClickHouse.Addr) == 0 {
		return errors.New("clickhouse.addr: must not be empty")
	}
	if _, err := chmigrate.Bind("", c.ClickHouse.Database); err != nil {
		return fmt.Errorf("clickhouse.database: %w", err)
	}
	if c.ClickHouse.DialTimeout <= 0 || c.ClickHouse.MaxOpenConns <= 0 {
		return errors.New("clickhouse.dial_timeout, clickhouse.max_open_conns: must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown_timeout: must be positive")
	}
	return nil
}
