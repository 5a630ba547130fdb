// Package config is the writer's configuration: defaults, then a YAML file (-config or
// VIGIE_WRITER_CONFIG), then VIGIE_WRITER_* environment variables, then flags (pkg/service).
// The blocks every service shares (admin, log, shutdown_timeout, kafka, consumer, producer,
// clickhouse, topics) are described once in the top README.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/service"
)

// maxBatch bounds consumer.batch_size: above max_insert_block_size (about 1 M rows) the
// server cuts an insert into several parts, which are not stored atomically together.
const maxBatch = 1_000_000

// InsertRetryBudget bounds the retries of one insert with its own token; past it the batch
// goes back to the consumer, whose retry ends when the partition is revoked, so that a
// rebalance is not held up by a ClickHouse outage (see README).
const InsertRetryBudget = 10 * time.Second

// Config is the writer's whole configuration.
type Config struct {
	service.Base `yaml:",inline"`

	Kafka kafka.Config `yaml:"kafka"`
	// Consumer reads topics.enriched; a partition's batch (batch_size messages, or what
	// came within batch_wait of the first) is what the writer stores and commits at once.
	Consumer kafka.ConsumerConfig `yaml:"consumer"`
	// Producer writes the dead letters (topics.dlq).
	Producer   kafka.ProducerConfig `yaml:"producer"`
	Topics     Topics               `yaml:"topics"`
	ClickHouse ClickHouse           `yaml:"clickhouse"`

	// MaxPendingRows bounds the messages decoded and held across all partitions: a batch
	// waits until its rows fit. Memory is about 400 bytes a row, plus the consumer's fetched
	// messages (consumer.queue_capacity) and the batches in hand.
	MaxPendingRows int `yaml:"max_pending_rows"`
	// MaxConcurrentInserts is how many inserts run at once; each merges the partitions'
	// blocks waiting at that moment, and holds about two more copies of those rows (encoded
	// columns, compressed frames) while it runs.
	MaxConcurrentInserts int `yaml:"max_concurrent_inserts"`
	// MemoryLimitMB is the Go runtime's soft memory limit (debug.SetMemoryLimit): the
	// garbage collector works harder as the heap nears it. 0 leaves GOMEMLIMIT in charge.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
}

// ClickHouse is the shared clickhouse block and the cluster the schema was migrated for.
type ClickHouse struct {
	clickhouse.Config `yaml:",inline"`
	// Cluster is the ClickHouse cluster (`vigiectl migrate -clickhouse.cluster`): the writer
	// then inserts through the Distributed detections table, synchronously, and reads the
	// stored offsets from every replica's detections_local (docs/clickhouse-cluster.md).
	// Empty: one server.
	Cluster string `yaml:"cluster"`
}

// Topics are the topics the writer reads and writes; it creates neither (`vigiectl topics
// apply` does).
type Topics struct {
	Enriched string `yaml:"enriched"`
	DLQ      string `yaml:"dlq"`
}

// Default returns the writer's defaults, measured with BenchmarkThroughput (see README).
func Default() *Config {
	// A partition's batch is held twice until it is stored: the fetched messages and their
	// decoded rows. 5,000 per partition (10,000 before the shared consumer, which decoded as it
	// fetched) keeps the heap under memory_limit_mb with six partitions; inserts stay as large,
	// since the partitions' blocks are merged. The fetch buffers are those the writer had.
	consumer := kafka.DefaultConsumerConfig("vigie-writer")
	consumer.BatchSize = 5000
	consumer.BatchWait = 500 * time.Millisecond
	consumer.QueueCapacity = 3000
	consumer.MaxBytes = 2 << 20
	return &Config{
		Base:                 service.DefaultBase("127.0.0.1:9464"),
		Kafka:                kafka.DefaultConfig(),
		Consumer:             consumer,
		Producer:             kafka.DefaultProducerConfig(),
		Topics:               Topics{Enriched: event.TopicEnriched, DLQ: event.TopicDLQ},
		ClickHouse:           ClickHouse{Config: clickhouse.DefaultConfig()},
		MaxPendingRows:       40000,
		MaxConcurrentInserts: 2,
		MemoryLimitMB:        280,
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
	if err := c.Consumer.Validate("consumer"); err != nil {
		return err
	}
	if c.Consumer.BatchSize > maxBatch {
		return fmt.Errorf("consumer.batch_size: %d is above %d (one insert must stay one part)", c.Consumer.BatchSize, maxBatch)
	}
	if err := c.Producer.Validate("producer"); err != nil {
		return err
	}
	switch {
	case c.Topics.Enriched == "":
		return errors.New("topics.enriched: must not be empty")
	case c.Topics.DLQ == "":
		return errors.New("topics.dlq: must not be empty")
	}
	if need := c.ClickHouse.QueryTimeout + InsertRetryBudget; c.Consumer.RebalanceTimeout <= need {
		return fmt.Errorf("consumer.rebalance_timeout: %s must exceed clickhouse.query_timeout + the %s insert retry budget (%s), or a rebalance can hand a batch to another member while its insert runs",
			c.Consumer.RebalanceTimeout, InsertRetryBudget, need)
	}
	if err := c.ClickHouse.Validate("clickhouse"); err != nil {
		return err
	}
	if c.ClickHouse.Cluster != "" {
		if err := chmigrate.ValidateClusterName(c.ClickHouse.Cluster); err != nil {
			return fmt.Errorf("clickhouse.cluster: %w", err)
		}
	}
	switch {
	case c.MaxPendingRows < c.Consumer.BatchSize:
		return fmt.Errorf("max_pending_rows: %d must be at least consumer.batch_size (%d)", c.MaxPendingRows, c.Consumer.BatchSize)
	case c.MaxConcurrentInserts <= 0:
		return errors.New("max_concurrent_inserts: must be positive")
	case c.MemoryLimitMB < 0:
		return errors.New("memory_limit_mb: must not be negative")
	}
	return nil
}
