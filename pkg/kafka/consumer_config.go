package kafka

// The consumer's configuration: the consumer block of every consuming service.

import (
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/retry"
)

// ConsumerConfig configures a consumer group member: the `consumer:` block of a service's
// configuration. Where to connect is the Config beside it; what topic, the service's topics.
type ConsumerConfig struct {
	// GroupID names the consumer group.
	GroupID string `yaml:"group_id"`
	// BatchSize is the most messages handed to the handler at once.
	BatchSize int `yaml:"batch_size"`
	// BatchWait is the longest a batch waits to fill after its first message.
	BatchWait time.Duration `yaml:"batch_wait"`
	// MaxBytes bounds one fetch response from one partition.
	MaxBytes int `yaml:"max_bytes"`
	// QueueCapacity is how many fetched messages the member buffers ahead of its handlers,
	// shared among its partitions (each gets QueueCapacity / partitions, at least one).
	QueueCapacity int `yaml:"queue_capacity"`
	// HeartbeatInterval is how often the member tells the group it is alive; a rebalance
	// is noticed within about this long.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// SessionTimeout is how long the group waits for a silent member before rebalancing.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long a rebalance waits for every member to finish its batches
	// in hand and rejoin; a member that takes longer is dropped from the group. It must
	// outlast the slowest handling of one batch (the writer: an insert's query timeout and
	// its retries), else a batch in hand can be handed to another member while it is stored.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// Retry is the policy for handler, OnAssign, fetch and commit failures. It is not
	// configurable by keys (every retry in Vigie uses one policy); the zero value is
	// retry.Default().
	Retry retry.Policy `yaml:"-"`
}

// DefaultConsumerConfig returns settings measured to keep the pipeline's consumers busy.
func DefaultConsumerConfig(group string) ConsumerConfig {
	return ConsumerConfig{
		GroupID:           group,
		BatchSize:         5000,
		BatchWait:         100 * time.Millisecond,
		MaxBytes:          8 << 20,
		QueueCapacity:     10000,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  90 * time.Second,
		Retry:             retry.Default(),
	}
}

// Validate names the bad key; prefix is the block's place in the service's configuration,
// normally "consumer".
func (c ConsumerConfig) Validate(prefix string) error {
	switch {
	case c.GroupID == "":
		return fmt.Errorf("%s.group_id: must not be empty", prefix)
	case c.BatchSize <= 0:
		return fmt.Errorf("%s.batch_size: must be positive", prefix)
	case c.BatchWait <= 0:
		return fmt.Errorf("%s.batch_wait: must be positive", prefix)
	case c.MaxBytes <= 0:
		return fmt.Errorf("%s.max_bytes: must be positive", prefix)
	case c.QueueCapacity <= 0:
		return fmt.Errorf("%s.queue_capacity: must be positive", prefix)
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("%s.heartbeat_interval: must be positive", prefix)
	case c.SessionTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("%s.session_timeout: must be longer than heartbeat_interval (%s)", prefix, c.HeartbeatInterval)
	case c.RebalanceTimeout < c.SessionTimeout:
		return fmt.Errorf("%s.rebalance_timeout: must be at least session_timeout (%s)", prefix, c.SessionTimeout)
	}
	return c.Retry.Validate(prefix + ".retry")
}
