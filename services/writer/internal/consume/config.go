package consume

import (
	"fmt"
	"time"
)

// Config is the consumption and batching part of the writer's configuration.
type Config struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	GroupID string   `yaml:"group_id"`
	// DLQTopic receives messages that cannot be decoded or stored, with the reason.
	DLQTopic string `yaml:"dlq_topic"`

	// A partition's batch is inserted when it holds BatchRows rows or when its first row
	// has waited BatchDelay, whichever comes first.
	BatchRows  int           `yaml:"batch_rows"`
	BatchDelay time.Duration `yaml:"batch_delay"`
	// MaxPendingRows bounds the rows held in memory across all partitions (decoded, not yet
	// written): when reached, partitions flush early and fetching waits. Memory is about
	// 400 bytes a row plus the Kafka readers' buffers (FetchMaxBytes per partition).
	MaxPendingRows int `yaml:"max_pending_rows"`
	// MaxConcurrentInserts is the number of inserters: each merges the partitions' blocks
	// waiting at that moment into one insert, and holds about two more copies of those rows
	// (encoded columns, compressed frames) while it runs.
	MaxConcurrentInserts int `yaml:"max_concurrent_inserts"`
	// FetchMaxBytes is the most bytes one fetch from one partition returns.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`

	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	SessionTimeout    time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the group waits for members to finish their in-flight
	// batches and rejoin; it must exceed a worst-case insert (see README).
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`

	// Retry of inserts and dead-letter writes: exponential backoff with jitter from
	// RetryInitial to RetryMax, RetryAttempts attempts in all; then the writer stops with
	// an error, committing nothing past what was written.
	RetryInitial  time.Duration `yaml:"retry_initial"`
	RetryMax      time.Duration `yaml:"retry_max"`
	RetryAttempts int           `yaml:"retry_attempts"`
}

// DefaultConfig returns the defaults measured in the writer's benchmark (see README).
func DefaultConfig() Config {
	return Config{
		Brokers:              []string{"127.0.0.1:19092"},
		Topic:                "detections.enriched.v1",
		GroupID:              "vigie-writer",
		DLQTopic:             "detections.dlq.v1",
		BatchRows:            10000,
		BatchDelay:           500 * time.Millisecond,
		MaxPendingRows:       40000,
		MaxConcurrentInserts: 2,
		FetchMaxBytes:        2 << 20,
		HeartbeatInterval:    time.Second,
		SessionTimeout:       10 * time.Second,
		RebalanceTimeout:     60 * time.Second,
		RetryInitial:         100 * time.Millisecond,
		RetryMax:             10 * time.Second,
		RetryAttempts:        12,
	}
}

// Validate names the bad field; prefix is the section's name in the service's config.
func (c Config) Validate(prefix string) error {
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%s.brokers: must not be empty", prefix)
	case c.Topic == "":
		return fmt.Errorf("%s.topic: must not be empty", prefix)
	case c.GroupID == "":
		return fmt.Errorf("%s.group_id: must not be empty", prefix)
	case c.DLQTopic == "":
		return fmt.Errorf("%s.dlq_topic: must not be empty", prefix)
	case c.BatchRows <= 0 || c.BatchRows > 1_000_000:
		// Above max_insert_block_size (about 1 M rows) the server cuts an insert into several
		// parts, which are not stored atomically together.
		return fmt.Errorf("%s.batch_rows: must be between 1 and 1000000", prefix)
	case c.BatchDelay <= 0:
		return fmt.Errorf("%s.batch_delay: must be positive", prefix)
	case c.MaxPendingRows < c.BatchRows:
		return fmt.Errorf("%s.max_pending_rows: must be at least batch_rows (%d)", prefix, c.BatchRows)
	case c.MaxConcurrentInserts <= 0:
		return fmt.Errorf("%s.max_concurrent_inserts: must be positive", prefix)
	case c.FetchMaxBytes < 1<<10:
		return fmt.Errorf("%s.fetch_max_bytes: must be at least 1024", prefix)
	case c.HeartbeatInterval <= 0 || c.SessionTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("%s.session_timeout: must exceed heartbeat_interval (%s)", prefix, c.HeartbeatInterval)
	case c.RebalanceTimeout <= 0:
		return fmt.Errorf("%s.rebalance_timeout: must be positive", prefix)
	case c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial:
		return fmt.Errorf("%s.retry_max: must be at least retry_initial (%s), both positive", prefix, c.RetryInitial)
	case c.RetryAttempts <= 0:
		return fmt.Errorf("%s.retry_attempts: must be positive", prefix)
	}
	return nil
}
