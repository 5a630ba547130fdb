package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Message is a Kafka message as kafka-go reads it.
type Message = kafkago.Message

// FirstOffset, returned by OnAssign, reads a partition from its first offset.
const FirstOffset = kafkago.FirstOffset

// Assignment is one partition given to this member in one generation.
type Assignment struct {
	Topic     string
	Partition int
	// Committed is the group's committed offset for the partition (the next offset to
	// read), or -1 when none is committed.
	Committed int64
}

// Hooks let a service keep per-partition state and choose where each partition starts.
// Either may be nil. Hooks of different partitions run concurrently.
type Hooks struct {
	// OnAssign is called before a newly assigned partition is read; it returns the offset to
	// read from (return a.Committed to keep the group's; FirstOffset for the start; any
	// negative offset reads from the start). Its errors are retried with the consumer's
	// retry policy until it succeeds or the partition is revoked; its ctx ends then.
	// Without OnAssign a partition starts at a.Committed, or at its first offset.
	OnAssign func(ctx context.Context, a Assignment) (int64, error)
	// OnRevoke is called once the partition's last batch was handled and committed
	// (rebalance, Stop) — or given up, when the batch in hand still failed or Run's context
	// ended; drop the partition's state here. It is called exactly once for every OnAssign
	// that succeeded, before the partition can be assigned to this member again.
	OnRevoke func(a Assignment)
}

// Handler handles one batch of ONE partition's messages, in offset order. Handlers of
// different partitions run concurrently; one partition's batches are handled one after the
// other. It returns nil once the batch is durably handled; the consumer then commits the
// offset after its last message. An error is retried (the same batch again) with the retry
// policy for as long as it takes — until it succeeds, the partition is revoked, or Stop —
// and never ends the process; a retry.Permanent error is retried all the same (a message
// that can never be handled is the handler's to dead-letter). A batch may be handled again
// after a rebalance or a crash (at least once). The handler must not keep msgs after it
// returns: the slice is reused for the next batch. Its ctx ends only when Run's context
// does, or when Stop's context expires before the batch is finished.
type Handler func(ctx context.Context, msgs []Message) error

// failingAfter is how long a handler (or OnAssign) may keep failing before Ready says so;
// withoutGenerationAfter, how long a member that had a generation may be without one;
// lagInterval, how often the lag of every owned partition is read from the broker (it is
// also set after each batch).
const (
	failingAfter           = 30 * time.Second
	withoutGenerationAfter = 30 * time.Second
	lagInterval            = 10 * time.Second
)

// Consumer is one member of a consumer group reading one topic, at least once, partition by
// partition: the one consumer of every service. Run runs it; Stop stops it; Ready is its
// readiness check. Its contract is fetch → handle → durable → commit:
//
// Each partition the group assigns the member is read by its own goroutine, for one
// generation. OnAssign chooses where the partition starts (the group's committed offset, or
// a service's own record; an offset beyond the partition's end reads it from its first);
// then the goroutine fills a batch of that partition's messages (BatchSize, or what came within BatchWait of
// the first), hands it to the Handler, and once the handler returned nil — the batch is
// durably handled — commits the offset after its last message, synchronously, through the
// generation. Nothing is committed past what a handler finished: at least once.
//
// When the generation ends (a rebalance) or on Stop, the batch in hand is finished (handled
// and committed), OnRevoke is called, and only then is the partition given up, so that its
// next owner resumes right after it. The hooks are the per-partition assign and revoke hooks
// of franz-go's OnPartitionsAssigned / OnPartitionsRevoked.
//
// Transient failures never end the process: a topic that does not exist yet is waited for,
// a broker that is down or a group coordinator that errs is rejoined, and a handler, OnAssign,
// fetch or commit that fails is retried with the retry policy (a batch is retried whole)
// until it succeeds, the partition is revoked, or Stop. They show in Ready and in the
// vigie_kafka_consumer_* metrics.
type Consumer struct {
	conn    Config
	cfg     ConsumerConfig
	topic   string
	handler Handler
	hooks   Hooks
	logger  *zap.Logger // with topic and group
	waitLog *zap.Logger // with group (WaitForTopic adds the topic)
	m       *groupMetrics

	dialer    *kafkago.Dialer
	transport *kafkago.Transport

	// stopCtx ends on Stop: no more fetching, the batches in hand finish. abortCtx ends
	// when Stop's context expires first: the handlers' context ends too.
	stopCtx  context.Context
	stop     context.CancelFunc
	abortCtx context.Context
	abort    context.CancelFunc
	running  atomic.Bool
	done     chan struct{}

	// Test hooks (consumer_export_test.go).
	failAfter   time.Duration
	lagInterval time.Duration

	mu           sync.Mutex
	waitingTopic bool      // Run waits for the topic to exist
	inGeneration bool      // the member holds a generation
	generation   int32     // the generation held, when inGeneration
	joinedOnce   bool      // a generation was held once
	lostAt       time.Time // when the last generation ended
	lastJoinErr  error
	parts        map[int]*partState // partitions owned now
}

// partState is what the consumer knows of one owned partition.
type partState struct {
	lag      func() prometheus.Gauge // the series appears once the lag is known
	position atomic.Int64            // next offset to handle; -1 until known
	// failing is guarded by Consumer.mu.
	failingSince time.Time
	failingWhat  string // "handler" or "assign"
	failingErr   error
}

// NewConsumer builds a member of group cfg.GroupID reading topic, handing its batches to h.
// It fails only on a bad configuration (including unreadable TLS or SASL files). Its
// metrics (vigie_kafka_consumer_*, labelled by group and topic) are registered on reg, which
// should be the service's root (unprefixed) registry; consumers of several groups or topics
// may share one registry. reg may be nil.
func NewConsumer(conn Config, cfg ConsumerConfig, topic string, h Handler, hooks Hooks, logger *zap.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := conn.Validate("kafka"); err != nil {
		return nil, err
	}
	if err := cfg.Validate("consumer"); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, errors.New("consumer: no topic")
	}
	if h == nil {
		return nil, errors.New("consumer: no handler")
	}
	dialer, err := conn.Dialer()
	if err != nil {
		return nil, err
	}
	transport, err := conn.Transport()
	if err != nil {
		return nil, err
	}
	m, err := newConsumerMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		conn: conn, cfg: cfg, topic: topic, handler: h, hooks: hooks,
		logger:    logger.Named("consumer").With(zap.String("topic", topic), zap.String("group", cfg.GroupID)),
		waitLog:   logger.Named("consumer").With(zap.String("group", cfg.GroupID)),
		m:         m.curry(cfg.GroupID, topic),
		dialer:    dialer,
		transport: transport,
		done:      make(chan struct{}),
		parts:     map[int]*partState{},

		failAfter:   failingAfter,
		lagInterval: lagInterval,
	}
	c.stopCtx, c.stop = context.WithCancel(context.Background())
	c.abortCtx, c.abort = context.WithCancel(context.Background())
	return c, nil
}

// Run waits for the topic to exist, joins the group and consumes until Stop (then it
// returns nil, once every partition's batch in hand was finished and OnRevoke called, and
// the member left the group) or ctx's end (ctx.Err()). It never returns for a transient
// failure. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	defer close(c.done)
	defer c.transport.CloseIdleConnections()
	if c.stopCtx.Err() != nil {
		return nil // stopped before it ran
	}
	err := c.run(ctx)
	if c.stopCtx.Err() != nil && ctx.Err() == nil {
		c.logger.Info("stopped")
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Stop asks Run to finish the batches in hand, commit them and leave the group, and waits
// for Run to return. If ctx ends first, the handlers' context is cancelled (nothing more is
// committed) and Stop returns ctx's error. Stop before Run makes Run return at once.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stop()
	if !c.running.Load() {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.abort()
		return fmt.Errorf("consumer %s stop: %w", c.topic, ctx.Err())
	}
}

// Ready is the consumer's readiness check: an error until the member holds a generation of
// its group, when it has been without one for more than 30 s, or when a partition's
// handler (or OnAssign) has been failing for more than 30 s (the error names the partition
// and the handler's error).
func (c *Consumer) Ready(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for id, st := range c.parts {
		if st.failingErr != nil && now.Sub(st.failingSince) > c.failAfter {
			return fmt.Errorf("topic %s partition %d: %s failing for %s: %w",
				c.topic, id, st.failingWhat, now.Sub(st.failingSince).Round(time.Second), st.failingErr)
		}
	}
	if c.inGeneration {
		return nil
	}
	var why string
	switch {
	case c.waitingTopic:
		why = ": waiting for the topic to exist"
	case c.lastJoinErr != nil:
		why = ": " + c.lastJoinErr.Error()
	}
	if !c.joinedOnce {
		return fmt.Errorf("not yet a member of group %s (topic %s)%s", c.cfg.GroupID, c.topic, why)
	}
	if d := now.Sub(c.lostAt); d > withoutGenerationAfter {
		return fmt.Errorf("without a generation of group %s (topic %s) for %s%s", c.cfg.GroupID, c.topic, d.Round(time.Second), why)
	}
	return nil
}
