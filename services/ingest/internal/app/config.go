// Package app wires the ingest service: configuration, keys, credentials, Kafka writers, the
// HTTP server, the admin server, and their ordered shutdown.
package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/telemetry"
)

// Config is the ingest configuration (YAML file, then VIGIE_INGEST_* environment, then flags).
type Config struct {
	// Listen is the address of the events API.
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics, /healthz and /readyz.
	AdminListen string    `yaml:"admin_listen"`
	TLS         TLSConfig `yaml:"tls"`
	// CredentialsFile lists sensors and their token hashes (pkg/sensorauth); it is
	// re-read every CredentialsReload and swapped when its content changed.
	CredentialsFile   string          `yaml:"credentials_file"`
	CredentialsReload time.Duration   `yaml:"credentials_reload"`
	Pseudonym         PseudonymConfig `yaml:"pseudonym"`
	Limits            LimitsConfig    `yaml:"limits"`
	Rate              RateConfig      `yaml:"rate"`
	// DedupWindow is how long a (sensor_id, event_id) is remembered: at least 10 minutes.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// ProduceTimeout bounds the wait for Kafka's acknowledgement of one request.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// RetryAfter is the Retry-After of a 503 answer.
	RetryAfter      time.Duration        `yaml:"retry_after"`
	Kafka           kafka.ProducerConfig `yaml:"kafka"`
	Topics          TopicsConfig         `yaml:"topics"`
	ShutdownTimeout time.Duration        `yaml:"shutdown_timeout"`
	Log             telemetry.LogConfig  `yaml:"log"`
}

// TLSConfig turns on TLS when CertFile and KeyFile are set, and mutual TLS (client
// certificates signed by ClientCAFile required) when ClientCAFile is set too.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// PseudonymConfig says where the pseudonymisation keys are: KeyFile (YAML, see
// pkg/pseudonym.KeyFile) or, when empty, the environment variables VIGIE_PSEUDONYM_KEYS and
// VIGIE_PSEUDONYM_ACTIVE.
type PseudonymConfig struct {
	KeyFile string `yaml:"key_file"`
	// DefaultCountryCode normalises national dialled numbers (env keys only; a key file
	// carries its own).
	DefaultCountryCode string `yaml:"default_country_code"`
}

// LimitsConfig bounds one request.
type LimitsConfig struct {
	MaxWireBytes  int64 `yaml:"max_wire_bytes"`
	MaxBodyBytes  int64 `yaml:"max_body_bytes"`
	MaxEvents     int   `yaml:"max_events"`
	MaxEventBytes int   `yaml:"max_event_bytes"`
}

// RateConfig is the per-sensor token bucket, in events.
type RateConfig struct {
	EventsPerSecond float64 `yaml:"events_per_second"`
	Burst           int     `yaml:"burst"`
}

// TopicsConfig names the topics and, when Create is set, how to create them at start.
type TopicsConfig struct {
	Raw               string `yaml:"raw"`
	DLQ               string `yaml:"dlq"`
	Create            bool   `yaml:"create"`
	Partitions        int    `yaml:"partitions"`
	ReplicationFactor int    `yaml:"replication_factor"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:19080",
		AdminListen:       "127.0.0.1:19081",
		CredentialsReload: 2 * time.Second,
		Pseudonym:         PseudonymConfig{DefaultCountryCode: "33"},
		Limits:            LimitsConfig{MaxWireBytes: 8 << 20, MaxBodyBytes: 16 << 20, MaxEvents: 1000, MaxEventBytes: 16 << 10},
		Rate:              RateConfig{EventsPerSecond: 2000, Burst: 5000},
		DedupWindow:       10 * time.Minute,
		ProduceTimeout:    10 * time.Second,
		RetryAfter:        5 * time.Second,
		Kafka:             kafka.DefaultProducerConfig(),
		Topics:            TopicsConfig{Raw: event.TopicRaw, DLQ: event.TopicDLQ, Create: true, Partitions: 6, ReplicationFactor: 1},
		ShutdownTimeout:   30 * time.Second,
		Log:               telemetry.DefaultLogConfig(),
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("listen: must not be empty")
	case c.AdminListen == "":
		return errors.New("admin_listen: must not be empty")
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls: cert_file and key_file go together")
	case c.TLS.ClientCAFile != "" && c.TLS.CertFile == "":
		return errors.New("tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file")
	case c.CredentialsFile == "":
		return errors.New("credentials_file: must be set (sensor token hashes, see ingest-credentials)")
	case c.CredentialsReload <= 0:
		return errors.New("credentials_reload: must be positive")
	case c.Limits.MaxWireBytes <= 0 || c.Limits.MaxBodyBytes <= 0:
		return errors.New("limits.max_wire_bytes, limits.max_body_bytes: must be positive")
	case c.Limits.MaxEvents <= 0:
		return errors.New("limits.max_events: must be positive")
	case c.Limits.MaxEventBytes < 256:
		return errors.New("limits.max_event_bytes: must be at least 256")
	case c.Rate.EventsPerSecond <= 0:
		return errors.New("rate.events_per_second: must be positive")
	case c.Rate.Burst < c.Limits.MaxEvents:
		return fmt.Errorf("rate.burst: must be at least limits.max_events (%d), or a full request could never pass", c.Limits.MaxEvents)
	case c.DedupWindow < 10*time.Minute:
		return errors.New("dedup_window: must be at least 10m")
	case c.ProduceTimeout <= 0:
		return errors.New("produce_timeout: must be positive")
	case c.RetryAfter < time.Second:
		return errors.New("retry_after: must be at least 1s")
	case c.Topics.Raw == "" || c.Topics.DLQ == "":
		return errors.New("topics.raw, topics.dlq: must not be empty")
	case c.Topics.Create && (c.Topics.Partitions <= 0 || c.Topics.ReplicationFactor <= 0):
		return errors.New("topics.partitions, topics.replication_factor: must be positive")
	case c.ShutdownTimeout <= 0:
		return errors.New("shutdown_timeout: must be positive")
	}
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	return c.Log.Validate()
}
