// Package app wires the enricher: configuration, reference store, Kafka consumer and
// producers, the ClickHouse reference loader and its metrics, on the service skeleton
// (pkg/service).
package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/refwatch"
	"github.com/vigie/vigie/pkg/service"
)

// Name is the service's name: its metrics are vigie_enricher_*, its environment
// VIGIE_ENRICHER_*.
const Name = "enricher"

// EnvPrefix is the prefix of the enricher's environment variables (VIGIE_ENRICHER_...), as
// service.Main derives it from Name.
var EnvPrefix = service.EnvPrefix(Name)

// maxBatch bounds consumer.batch_size: a batch is held in memory twice (raw and enriched)
// per partition being handled.
const maxBatch = 20000

// Config is the enricher's configuration. The blocks shared by every service (admin, log,
// shutdown_timeout, kafka, consumer, producer, clickhouse) are described once in the top
// README.
type Config struct {
	service.Base `yaml:",inline"`

	Kafka    kafka.Config         `yaml:"kafka"`
	Consumer kafka.ConsumerConfig `yaml:"consumer"`
	// Producer writes the enriched events and the dead letters. Its batch_size must be at
	// least consumer.batch_size, so that a partition's share of a batch travels in one
	// produce request.
	Producer kafka.ProducerConfig `yaml:"producer"`
	Topics   Topics               `yaml:"topics"`
	// ClickHouse receives the reference data as tables for analysts. Empty addrs (the
	// default): not loaded.
	ClickHouse ClickHouse      `yaml:"clickhouse"`
	Reference  refwatch.Config `yaml:"reference"`
}

// ClickHouse is the shared clickhouse block and the cluster the schema was migrated for.
type ClickHouse struct {
	clickhouse.Config `yaml:",inline"`
	// Cluster is the ClickHouse cluster (`vigiectl migrate -clickhouse.cluster`), as the
	// writer's clickhouse.cluster: the reference tables are then replaced ON CLUSTER
	// (internal/chref). Empty: one server.
	Cluster string `yaml:"cluster"`
}

// Topics are the topics the enricher reads and writes. It creates none of them (`vigiectl
// topics apply` does).
type Topics struct {
	Raw      string `yaml:"raw"`
	Enriched string `yaml:"enriched"`
	DLQ      string `yaml:"dlq"`
}

// DefaultConfig is the configuration for the local stack (`make up`).
func DefaultConfig() *Config {
	consumer := kafka.DefaultConsumerConfig("vigie-enricher")
	consumer.BatchSize = 2000
	consumer.BatchWait = 50 * time.Millisecond
	producer := kafka.DefaultProducerConfig()
	producer.BatchSize = consumer.BatchSize
	ch := clickhouse.DefaultConfig()
	ch.Addrs = nil
	return &Config{
		Base:       service.DefaultBase("127.0.0.1:19103"),
		Kafka:      kafka.DefaultConfig(),
		Consumer:   consumer,
		Producer:   producer,
		Topics:     Topics{Raw: event.TopicRaw, Enriched: event.TopicEnriched, DLQ: event.TopicDLQ},
		ClickHouse: ClickHouse{Config: ch},
		Reference:  refwatch.DefaultConfig(),
	}
}

// ClickHouseEnabled says whether the reference data goes to ClickHouse (clickhouse.addrs
// set).
func (c *Config) ClickHouseEnabled() bool { return len(c.ClickHouse.Addrs) > 0 }

// Validate names the first bad key.
func (c *Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	if err := c.Consumer.Validate("consumer"); err != nil {
		return err
	}
	if err := c.Producer.Validate("producer"); err != nil {
		return err
	}
	t := c.Topics
	switch {
	case c.Consumer.BatchSize > maxBatch:
		return fmt.Errorf("consumer.batch_size: must be at most %d", maxBatch)
	case c.Producer.BatchSize < c.Consumer.BatchSize:
		return errors.New("producer.batch_size: must be at least consumer.batch_size (a partition's share of a batch goes in one request)")
	case t.Raw == "" || t.Enriched == "" || t.DLQ == "":
		return errors.New("topics.raw, topics.enriched, topics.dlq: must not be empty")
	case t.Raw == t.Enriched || t.Raw == t.DLQ || t.Enriched == t.DLQ:
		return errors.New("topics.raw, topics.enriched, topics.dlq: must differ")
	}
	if err := c.Reference.Validate(); err != nil {
		return err
	}
	if c.ClickHouseEnabled() {
		if err := c.ClickHouse.Validate("clickhouse"); err != nil {
			return err
		}
		if c.ClickHouse.Cluster != "" {
			if err := chmigrate.ValidateClusterName(c.ClickHouse.Cluster); err != nil {
				return fmt.Errorf("clickhouse.cluster: %w", err)
			}
		}
	}
	return nil
}

// String is the configuration in one log line, without secrets.
func (c *Config) String() string {
	ch := "off"
	if c.ClickHouseEnabled() {
		ch = fmt.Sprintf("%v/%s", c.ClickHouse.Addrs, c.ClickHouse.Database)
		if c.ClickHouse.Cluster != "" {
			ch += " cluster=" + c.ClickHouse.Cluster
		}
	}
	return fmt.Sprintf("raw=%s enriched=%s dlq=%s group=%s reference=%q clickhouse=%s",
		c.Topics.Raw, c.Topics.Enriched, c.Topics.DLQ, c.Consumer.GroupID, c.Reference.Dir, ch)
}
