// Package app wires the enricher: configuration, reference store, Kafka consumer and
// producers, the ClickHouse reference loader, metrics and the lifecycle.
package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/telemetry"
)

// EnvPrefix is the prefix of the enricher's environment variables (VIGIE_ENRICHER_...).
const EnvPrefix = "VIGIE_ENRICHER"

// Config is the enricher's configuration.
type Config struct {
	Log telemetry.LogConfig `yaml:"log"`
	// AdminAddr serves /metrics, /healthz and /readyz.
	AdminAddr string `yaml:"admin_addr"`
	// ShutdownTimeout bounds the graceful shutdown (finish and commit the batch in hand).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	Kafka     KafkaConfig     `yaml:"kafka"`
	Reference ReferenceConfig `yaml:"reference"`
	// ClickHouse, when Addr is set, receives the reference data as tables for analysts.
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
}

// KafkaConfig says where events come from and go.
type KafkaConfig struct {
	Brokers       []string `yaml:"brokers"`
	RawTopic      string   `yaml:"raw_topic"`
	EnrichedTopic string   `yaml:"enriched_topic"`
	DLQTopic      string   `yaml:"dlq_topic"`
	GroupID       string   `yaml:"group_id"`
	// Partitions and ReplicationFactor are used to create the topics that do not exist.
	Partitions        int `yaml:"partitions"`
	ReplicationFactor int `yaml:"replication_factor"`
	// BatchSize is the most raw messages enriched and produced at once; BatchWait the
	// longest a batch waits to fill.
	BatchSize int           `yaml:"batch_size"`
	BatchWait time.Duration `yaml:"batch_wait"`
	// ProduceRetry is how long a failing produce is retried before the enricher stops
	// without committing (the batch is consumed again after a restart).
	ProduceRetry time.Duration `yaml:"produce_retry"`
	// Compression of the produced messages: none, gzip, snappy, lz4, zstd.
	Compression string `yaml:"compression"`
}

// ReferenceConfig says where the reference data is.
type ReferenceConfig struct {
	// Dir holds facilities.csv, sensors.csv, tac.csv and mcc_mnc.csv, watched for changes.
	// Empty: the copy embedded in the binary (no reload but on SIGHUP, which then reloads
	// the same data).
	Dir string `yaml:"dir"`
	// Debounce is how long the directory must be quiet after a change before reloading.
	Debounce time.Duration `yaml:"debounce"`
}

// ClickHouseConfig is where the reference tables are loaded. Empty Addr: not loaded.
type ClickHouseConfig struct {
	Addr     string        `yaml:"addr"`
	Database string        `yaml:"database"`
	Username string        `yaml:"username"`
	Password string        `yaml:"password"`
	Timeout  time.Duration `yaml:"timeout"`
}

// DefaultConfig is the configuration for the local stack (`make up`).
func DefaultConfig() Config {
	return Config{
		Log:             telemetry.DefaultLogConfig(),
		AdminAddr:       "127.0.0.1:19103",
		ShutdownTimeout: 30 * time.Second,
		Kafka: KafkaConfig{
			Brokers:           []string{"127.0.0.1:19092"},
			RawTopic:          event.TopicRaw,
			EnrichedTopic:     event.TopicEnriched,
			DLQTopic:          event.TopicDLQ,
			GroupID:           "vigie-enricher",
			Partitions:        6,
			ReplicationFactor: 1,
			BatchSize:         2000,
			BatchWait:         50 * time.Millisecond,
			ProduceRetry:      2 * time.Minute,
			Compression:       "lz4",
		},
		Reference:  ReferenceConfig{Debounce: 300 * time.Millisecond},
		ClickHouse: ClickHouseConfig{Database: "vigie", Username: "default", Timeout: 30 * time.Second},
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	k := c.Kafka
	switch {
	case c.AdminAddr == "":
		return errors.New("admin_addr: must not be empty")
	case c.ShutdownTimeout <= 0:
		return errors.New("shutdown_timeout: must be positive")
	case len(k.Brokers) == 0 || k.Brokers[0] == "":
		return errors.New("kafka.brokers: must not be empty")
	case k.RawTopic == "" || k.EnrichedTopic == "" || k.DLQTopic == "":
		return errors.New("kafka.raw_topic, kafka.enriched_topic, kafka.dlq_topic: must not be empty")
	case k.RawTopic == k.EnrichedTopic || k.RawTopic == k.DLQTopic || k.EnrichedTopic == k.DLQTopic:
		return errors.New("kafka.raw_topic, kafka.enriched_topic, kafka.dlq_topic: must differ")
	case k.GroupID == "":
		return errors.New("kafka.group_id: must not be empty")
	case k.Partitions <= 0:
		return errors.New("kafka.partitions: must be positive")
	case k.ReplicationFactor <= 0:
		return errors.New("kafka.replication_factor: must be positive")
	case k.BatchSize <= 0 || k.BatchSize > 20000:
		return errors.New("kafka.batch_size: must be between 1 and 20000")
	case k.BatchWait <= 0:
		return errors.New("kafka.batch_wait: must be positive")
	case k.ProduceRetry <= 0:
		return errors.New("kafka.produce_retry: must be positive")
	case c.Reference.Debounce <= 0:
		return errors.New("reference.debounce: must be positive")
	case c.ClickHouse.Addr != "" && c.ClickHouse.Database == "":
		return errors.New("clickhouse.database: must not be empty when clickhouse.addr is set")
	case c.ClickHouse.Addr != "" && c.ClickHouse.Timeout <= 0:
		return errors.New("clickhouse.timeout: must be positive")
	}
	if err := c.producerConfig().Validate("kafka"); err != nil {
		return err
	}
	return nil
}

func (c *Config) consumerConfig() kafka.ConsumerConfig {
	cc := kafka.DefaultConsumerConfig(c.Kafka.RawTopic, c.Kafka.GroupID)
	cc.Brokers = c.Kafka.Brokers
	cc.BatchSize = c.Kafka.BatchSize
	cc.BatchWait = c.Kafka.BatchWait
	cc.QueueCapacity = max(cc.QueueCapacity, 2*c.Kafka.BatchSize)
	return cc
}

// producerConfig sizes produce batches so that a partition's share of a consumer batch goes
// in one request: it succeeds or fails whole, which keeps each key's order on retry.
func (c *Config) producerConfig() kafka.ProducerConfig {
	pc := kafka.DefaultProducerConfig()
	pc.Brokers = c.Kafka.Brokers
	pc.BatchSize = c.Kafka.BatchSize
	pc.Compression = c.Kafka.Compression
	return pc
}

func (c *Config) topics() []kafka.TopicSpec {
	spec := func(name string) kafka.TopicSpec {
		return kafka.TopicSpec{Name: name, Partitions: c.Kafka.Partitions, ReplicationFactor: c.Kafka.ReplicationFactor}
	}
	return []kafka.TopicSpec{spec(c.Kafka.RawTopic), spec(c.Kafka.EnrichedTopic), spec(c.Kafka.DLQTopic)}
}

func (c *Config) String() string {
	return fmt.Sprintf("raw=%s enriched=%s dlq=%s group=%s reference=%q", c.Kafka.RawTopic, c.Kafka.EnrichedTopic, c.Kafka.DLQTopic, c.Kafka.GroupID, c.Reference.Dir)
}
