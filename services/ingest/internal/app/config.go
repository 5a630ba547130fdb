// Package app wires the ingest service into the service skeleton (pkg/service): keys,
// credentials, the Kafka producers and the events API server, and their ordered shutdown.
package app

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/refwatch"
	"github.com/vigie/vigie/pkg/service"
)

// Config is the ingest configuration (YAML file, then VIGIE_INGEST_* environment, then
// flags). The shared blocks (admin, log, shutdown_timeout, kafka, producer) are described
// once in the top README; the keys below them are ingest's own.
type Config struct {
	service.Base `yaml:",inline"`
	// Kafka is the connection to the brokers (brokers, tls, sasl).
	Kafka kafka.Config `yaml:"kafka"`
	// Producer configures the raw and dead-letter producers (acks all by default).
	Producer kafka.ProducerConfig `yaml:"producer"`
	Topics   TopicsConfig         `yaml:"topics"`

	// Listen is the address of the events API.
	Listen string `yaml:"listen"`
	// TLS is the events API's own server TLS, for the sensors; kafka.tls is the client TLS
	// of the connection to the brokers.
	TLS TLSConfig `yaml:"tls"`
	// CredentialsFile lists sensors and their token hashes (pkg/sensorauth). It is read at
	// start (the service does not start without it) and again on SIGHUP.
	CredentialsFile string          `yaml:"credentials_file"`
	Pseudonym       PseudonymConfig `yaml:"pseudonym"`
	// Reference is the reference data the zone of an event is checked against: a zone must
	// be one of its sensor's facility (the shared block, as in the enricher).
	Reference refwatch.Config `yaml:"reference"`
	Limits    LimitsConfig    `yaml:"limits"`
	Rate      RateConfig      `yaml:"rate"`
	// DedupWindow is how long a (sensor_id, event_id) is remembered, with its content: at
	// least 10 minutes. The window is rebuilt from the raw topic at start.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// DedupFollow keeps reading the raw topic after the rebuild, so that the window learns
	// what other replicas store (and what this one stored while its request failed). Off by
	// default: every replica would read every message, about a third more CPU per event.
	DedupFollow bool `yaml:"dedup_follow"`
	// ClockSkew is how far ahead of ingest's clock an observed_at may be: later ones are
	// refused (observed_at_in_future). 0 to 1h.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// Retention is how long detections are kept (the detections table's TTL, 90 days):
	// events observed longer ago are refused (observed_at_beyond_retention). 1h to 3650 days.
	Retention time.Duration `yaml:"retention"`
	// ProduceTimeout bounds the wait for Kafka's acknowledgement of one request.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// RetryAfter is the Retry-After of a 503 answer.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// TLSConfig turns on TLS for the events API when CertFile and KeyFile are set, and mutual
// TLS (client certificates signed by ClientCAFile required) when ClientCAFile is set too.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// PseudonymConfig says where the pseudonymisation keys are: KeyFile (YAML, see
// pkg/pseudonym.KeyFile) or, when empty, the environment variables VIGIE_PSEUDONYM_KEYS,
// VIGIE_PSEUDONYM_ACTIVE and VIGIE_BLOCK_KEY.
type PseudonymConfig struct {
	KeyFile string `yaml:"key_file"`
	// DefaultCountryCode normalises national dialled numbers (env keys only; a key file
	// carries its own).
	DefaultCountryCode string `yaml:"default_country_code"`
}

// LimitsConfig bounds one request, and what ingest holds at once.
type LimitsConfig struct {
	MaxWireBytes  int64 `yaml:"max_wire_bytes"`
	MaxBodyBytes  int64 `yaml:"max_body_bytes"`
	MaxEvents     int   `yaml:"max_events"`
	MaxEventBytes int   `yaml:"max_event_bytes"`
	// MaxRequestsInFlight bounds the requests handled at once: one more is answered 503.
	MaxRequestsInFlight int `yaml:"max_requests_in_flight"`
	// MaxBytesInFlight bounds the bytes of the request bodies held at once, decoded (at
	// least max_body_bytes): a request waits up to AdmissionWait for its body's bytes, then
	// is answered 503. Ingest's memory under load is about twice this, plus its dedup window.
	MaxBytesInFlight int64 `yaml:"max_bytes_in_flight"`
	// AdmissionWait is how long a request waits in line for body bytes.
	AdmissionWait time.Duration `yaml:"admission_wait"`
	// ReadHeaderTimeout bounds the reading of a request's headers, ReadTimeout the whole
	// request (headers, the wait for bytes, the body): a client that trickles them is cut
	// off, and the slot and bytes it held come free.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
}

// RateConfig is the per-sensor token bucket, in events.
type RateConfig struct {
	EventsPerSecond float64 `yaml:"events_per_second"`
	Burst           int     `yaml:"burst"`
}

// TopicsConfig names the topics ingest produces to. Ingest does not create them:
// `vigiectl topics apply` does, from schemas/kafka/topics.yaml.
type TopicsConfig struct {
	Raw string `yaml:"raw"`
	DLQ string `yaml:"dlq"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		Base:      service.DefaultBase("127.0.0.1:19081"),
		Kafka:     kafka.DefaultConfig(),
		Producer:  kafka.DefaultProducerConfig(),
		Topics:    TopicsConfig{Raw: event.TopicRaw, DLQ: event.TopicDLQ},
		Listen:    "127.0.0.1:19080",
		Pseudonym: PseudonymConfig{DefaultCountryCode: "33"},
		Reference: refwatch.DefaultConfig(),
		Limits: LimitsConfig{MaxWireBytes: 8 << 20, MaxBodyBytes: 16 << 20, MaxEvents: 1000, MaxEventBytes: 16 << 10,
			MaxRequestsInFlight: 128, MaxBytesInFlight: 24 << 20, AdmissionWait: 5 * time.Second,
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute},
		Rate:           RateConfig{EventsPerSecond: 2000, Burst: 5000},
		DedupWindow:    10 * time.Minute,
		DedupFollow:    false,
		ClockSkew:      event.ClockSkew,
		Retention:      event.Retention,
		ProduceTimeout: 10 * time.Second,
		RetryAfter:     5 * time.Second,
	}
}

// Validate names the first bad key.
func (c *Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	if err := c.Producer.Validate("producer"); err != nil {
		return err
	}
	if err := c.Reference.Validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	switch {
	case c.Topics.Raw == "" || c.Topics.DLQ == "":
		return errors.New("topics.raw, topics.dlq: must not be empty")
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls.cert_file, tls.key_file: set both or neither")
	case c.TLS.ClientCAFile != "" && c.TLS.CertFile == "":
		return errors.New("tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file")
	case c.CredentialsFile == "":
		return errors.New("credentials_file: must be set (sensor token hashes, see ingest-credentials)")
	case c.Limits.MaxWireBytes <= 0 || c.Limits.MaxBodyBytes <= 0:
		return errors.New("limits.max_wire_bytes, limits.max_body_bytes: must be positive")
	case c.Limits.MaxEvents <= 0:
		return errors.New("limits.max_events: must be positive")
	case c.Limits.MaxEventBytes < 256:
		return errors.New("limits.max_event_bytes: must be at least 256")
	case c.Limits.MaxRequestsInFlight <= 0:
		return errors.New("limits.max_requests_in_flight: must be positive")
	case c.Limits.MaxBytesInFlight < c.Limits.MaxBodyBytes:
		return fmt.Errorf("limits.max_bytes_in_flight: must be at least limits.max_body_bytes (%d), or a full request could never pass", c.Limits.MaxBodyBytes)
	case c.Limits.ReadHeaderTimeout <= 0:
		return errors.New("limits.read_header_timeout: must be positive")
	case c.Limits.ReadTimeout < c.Limits.ReadHeaderTimeout:
		return errors.New("limits.read_timeout: must be at least limits.read_header_timeout")
	case c.Limits.AdmissionWait < 0 || c.Limits.AdmissionWait >= c.Limits.ReadTimeout:
		return fmt.Errorf("limits.admission_wait: %s is not between 0 and limits.read_timeout (%s), which also bounds the wait", c.Limits.AdmissionWait, c.Limits.ReadTimeout)
	case c.Rate.EventsPerSecond <= 0:
		return errors.New("rate.events_per_second: must be positive")
	case c.Rate.Burst < c.Limits.MaxEvents:
		return fmt.Errorf("rate.burst: must be at least limits.max_events (%d), or a full request could never pass", c.Limits.MaxEvents)
	case c.DedupWindow < 10*time.Minute:
		return errors.New("dedup_window: must be at least 10m")
	case c.ClockSkew < 0 || c.ClockSkew > time.Hour:
		return fmt.Errorf("clock_skew: %s is not between 0 and 1h", c.ClockSkew)
	case c.Retention < time.Hour || c.Retention > 3650*24*time.Hour:
		return fmt.Errorf("retention: %s is not between 1h and 3650 days (87600h); set it to the detections TTL (90 days: 2160h)", c.Retention)
	case c.ProduceTimeout <= 0:
		return errors.New("produce_timeout: must be positive")
	case c.RetryAfter < time.Second:
		return errors.New("retry_after: must be at least 1s")
	}
	return nil
}
