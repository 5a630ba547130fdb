package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Message is a Kafka message as kafka-go reads it.
type Message = kafkago.Message

// Handler processes a batch of messages fetched from one topic, in order per partition. It
// must not keep msgs after it returns: the consumer reuses the slice for the next batch. It
// returns nil only once the batch is durably handed off (produced and acknowledged, written
// to ClickHouse, ...): the consumer then commits the batch. An error stops the consumer
// without committing, so the batch is delivered again after a restart (at-least-once).
// Retrying transient failures is the handler's job; it is given the context to honour.
type Handler func(ctx context.Context, msgs []Message) error

// ConsumerConfig configures a consumer group member.
type ConsumerConfig struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	GroupID string   `yaml:"group_id"`
	// BatchSize is the most messages handed to the handler at once.
	BatchSize int `yaml:"batch_size"`
	// BatchWait is the longest a batch waits to fill after its first message.
	BatchWait time.Duration `yaml:"batch_wait"`
	// MaxBytes bounds one fetch response; with the queue it bounds memory.
	MaxBytes int `yaml:"max_bytes"`
	// QueueCapacity is how many fetched messages kafka-go buffers ahead of the handler.
	QueueCapacity int `yaml:"queue_capacity"`
	// HeartbeatInterval is how often the member tells the group it is alive; a rebalance
	// is noticed within about this long.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// SessionTimeout is how long the group waits for a silent member before rebalancing.
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// DefaultConsumerConfig returns settings measured to keep the pipeline's consumers busy.
func DefaultConsumerConfig(topic, group string) ConsumerConfig {
	return ConsumerConfig{
		Brokers:           []string{"127.0.0.1:19092"},
		Topic:             topic,
		GroupID:           group,
		BatchSize:         5000,
		BatchWait:         100 * time.Millisecond,
		MaxBytes:          8 << 20,
		QueueCapacity:     10000,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
	}
}

// Validate names the bad field; prefix is the field's place in the service's config.
func (c ConsumerConfig) Validate(prefix string) error {
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%s.brokers: must not be empty", prefix)
	case c.Topic == "":
		return fmt.Errorf("%s.topic: must not be empty", prefix)
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
	case c.HeartbeatInterval <= 0 || c.SessionTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("%s.session_timeout: must be longer than a positive heartbeat_interval", prefix)
	}
	return nil
}

// Consumer is an at-least-once consumer group member: fetch a batch, hand it to the
// handler, commit it only when the handler returned nil.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	logger  *zap.Logger
	reader  *kafkago.Reader
	metrics consumerMetrics

	stopOnce sync.Once
	stopping chan struct{}
}

type consumerMetrics struct {
	messages prometheus.Counter
	batches  prometheus.Counter
	failures prometheus.Counter
	handle   prometheus.Histogram
	commit   prometheus.Histogram
	lag      prometheus.Gauge
}

// NewConsumer builds a consumer. Its metrics are registered on reg as
// kafka_consumer_*; services wrap reg with their vigie_<service>_ prefix.
func NewConsumer(cfg ConsumerConfig, handler Handler, logger *zap.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate("consumer"); err != nil {
		return nil, err
	}
	logger = logger.Named("consumer").With(zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID))
	labels := prometheus.Labels{"topic": cfg.Topic}
	f := promauto.With(reg)
	m := consumerMetrics{
		messages: f.NewCounter(prometheus.CounterOpts{Name: "kafka_consumer_messages_total", Help: "Messages handled and committed.", ConstLabels: labels}),
		batches:  f.NewCounter(prometheus.CounterOpts{Name: "kafka_consumer_batches_total", Help: "Batches handled and committed.", ConstLabels: labels}),
		failures: f.NewCounter(prometheus.CounterOpts{Name: "kafka_consumer_handler_failures_total", Help: "Batches whose handler failed; they were not committed.", ConstLabels: labels}),
		handle:   f.NewHistogram(prometheus.HistogramOpts{Name: "kafka_consumer_handle_seconds", Help: "Time the handler took per batch.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		commit:   f.NewHistogram(prometheus.HistogramOpts{Name: "kafka_consumer_commit_seconds", Help: "Time to commit a batch's offsets.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		lag:      f.NewGauge(prometheus.GaugeOpts{Name: "kafka_consumer_lag_messages", Help: "Messages behind the end of the partition last read.", ConstLabels: labels}),
	}
	return &Consumer{cfg: cfg, handler: handler, logger: logger, metrics: m, stopping: make(chan struct{})}, nil
}

// newReader joins the group. kafka-go joins as soon as the reader exists and, if the topic
// does not exist yet, stays in the group with no partitions for good; so Run waits for the
// topic first.
func (c *Consumer) newReader() *kafkago.Reader {
	cfg, logger := c.cfg, c.logger
	return kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           cfg.Brokers,
		Topic:             cfg.Topic,
		GroupID:           cfg.GroupID,
		MinBytes:          1,
		MaxBytes:          cfg.MaxBytes,
		MaxWait:           250 * time.Millisecond,
		QueueCapacity:     cfg.QueueCapacity,
		CommitInterval:    0, // synchronous commits: Commit returns once the broker has them
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: cfg.HeartbeatInterval,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		// A topic that gains partitions is rebalanced onto them.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ReadBackoffMin:         50 * time.Millisecond,
		ReadBackoffMax:         500 * time.Millisecond,
		ErrorLogger:            kafkago.LoggerFunc(func(msg string, args ...any) { logger.Warn(fmt.Sprintf(msg, args...)) }),
	})
}

// Run consumes until Stop is called, ctx is cancelled or the handler fails. After Stop, the
// batch in hand is finished and committed before Run returns nil. The reader is closed (the
// member leaves its group) when Run returns.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.waitForTopic(ctx); err != nil {
		return err
	}
	c.reader = c.newReader()
	defer func() {
		if err := c.reader.Close(); err != nil {
			c.logger.Warn("close reader", zap.Error(err))
		}
	}()
	// fetchCtx ends on Stop as well as on ctx: a stopped consumer fetches nothing more, but
	// the handler and the commit of the batch in hand keep ctx.
	fetchCtx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	go func() {
		select {
		case <-c.stopping:
			cancelFetch()
		case <-fetchCtx.Done():
		}
	}()

	c.logger.Info("consuming")
	batch := make([]Message, 0, c.cfg.BatchSize)
	for {
		var err error
		batch, err = c.fill(fetchCtx, batch[:0])
		if len(batch) > 0 {
			if herr := c.handle(ctx, batch); herr != nil {
				return herr
			}
		}
		if err != nil {
			if fetchCtx.Err() != nil && ctx.Err() == nil {
				c.logger.Info("stopped")
				return nil // Stop was called
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("fetch %s: %w", c.cfg.Topic, err)
		}
	}
}

// waitForTopic returns when the topic exists, or nil at Stop (Run then returns nil too).
func (c *Consumer) waitForTopic(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := WaitForTopic(ctx, c.cfg.Brokers, c.cfg.Topic, c.logger)
	select {
	case <-c.stopping:
		return nil
	default:
		return err
	}
}

// fill fetches up to BatchSize messages: it blocks for the first, then waits at most
// BatchWait for the rest. It returns what it has with the error that ended it.
func (c *Consumer) fill(ctx context.Context, batch []Message) ([]Message, error) {
	msg, err := c.reader.FetchMessage(ctx)
	if err != nil {
		return batch, err
	}
	batch = append(batch, msg)
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		msg, err := c.reader.FetchMessage(waitCtx)
		if err != nil {
			if waitCtx.Err() != nil && ctx.Err() == nil {
				return batch, nil // the batch window closed
			}
			return batch, err
		}
		batch = append(batch, msg)
	}
	return batch, nil
}

func (c *Consumer) handle(ctx context.Context, batch []Message) error {
	start := time.Now()
	if err := c.handler(ctx, batch); err != nil {
		c.metrics.failures.Inc()
		return fmt.Errorf("handle batch of %d from %s: %w", len(batch), c.cfg.Topic, err)
	}
	c.metrics.handle.Observe(time.Since(start).Seconds())
	start = time.Now()
	if err := c.reader.CommitMessages(ctx, batch...); err != nil {
		return fmt.Errorf("commit %s: %w", c.cfg.Topic, err)
	}
	c.metrics.commit.Observe(time.Since(start).Seconds())
	c.metrics.messages.Add(float64(len(batch)))
	c.metrics.batches.Inc()
	c.metrics.lag.Set(float64(c.reader.Stats().Lag))
	return nil
}

// Stop asks Run to finish the batch in hand and return; it does not wait (the lifecycle
// group waits for Run).
func (c *Consumer) Stop(context.Context) error {
	c.stopOnce.Do(func() { close(c.stopping) })
	return nil
}
