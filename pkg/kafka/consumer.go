package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/retry"
)

// Message is a Kafka message as kafka-go reads it.
type Message = kafkago.Message

// FirstOffset, returned by OnAssign, reads a partition from its first offset.
const FirstOffset = kafkago.FirstOffset

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
	}
	return c.Retry.Validate(prefix + ".retry")
}

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
	// rebalanceTimeoutMin is the least time the group waits for members to finish their
	// batches in hand and rejoin after a rebalance starts.
	rebalanceTimeoutMin = 60 * time.Second
)

// Consumer is one member of a consumer group reading one topic, at least once, partition by
// partition: the one consumer of every service. Run runs it; Stop stops it; Ready is its
// readiness check. Its contract is fetch → handle → durable → commit:
//
// Each partition the group assigns the member is read by its own goroutine, for one
// generation. OnAssign chooses where the partition starts (the group's committed offset, or
// a service's own record such as the highest offset ClickHouse holds); then the goroutine
// fills a batch of that partition's messages (BatchSize, or what came within BatchWait of
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

// run is Run's body: wait for the topic, then one generation after the other.
func (c *Consumer) run(ctx context.Context) error {
	// runCtx ends on Stop or ctx: fetching, waiting and retrying end with it. handleCtx ends
	// with ctx, or when Stop's own context expires: the batch in hand finishes on Stop.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	defer context.AfterFunc(c.stopCtx, cancelRun)()
	handleCtx, cancelHandle := context.WithCancel(ctx)
	defer cancelHandle()
	defer context.AfterFunc(c.abortCtx, cancelHandle)()

	// kafka-go joins the group at once and, if the topic does not exist yet, stays in it
	// with no partitions for good: wait for the topic first.
	c.setWaitingTopic(true)
	err := WaitForTopic(runCtx, c.conn, c.topic, c.waitLog)
	c.setWaitingTopic(false)
	if err != nil {
		return err
	}
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.conn.Brokers,
		Dialer:            c.dialer,
		Topics:            []string{c.topic},
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		SessionTimeout:    c.cfg.SessionTimeout,
		// A rebalance waits for every member to finish its batches in hand.
		RebalanceTimeout: max(c.cfg.SessionTimeout, rebalanceTimeoutMin),
		JoinGroupBackoff: 500 * time.Millisecond,
		StartOffset:      kafkago.FirstOffset,
		// A topic that gains partitions is rebalanced onto them.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ErrorLogger:            c.kafkaLogger(c.logger),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.cfg.GroupID, err)
	}
	var partitions sync.WaitGroup
	defer func() {
		// Close ends the generation (the partitions' goroutines finish their batches and
		// return) and leaves the group.
		partitions.Wait()
		_ = group.Close()
	}()

	partitions.Go(func() { c.lagLoop(runCtx) })
	c.logger.Info("joining group")
	var lastLog time.Time
	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				return nil
			}
			c.mu.Lock()
			c.lastJoinErr = err
			c.mu.Unlock()
			// kafka-go backs off between attempts; log at most every 10 s.
			if time.Since(lastLog) > 10*time.Second {
				c.logger.Warn("consumer group", zap.Error(err))
				lastLog = time.Now()
			}
			continue
		}
		c.startGeneration(runCtx, handleCtx, gen, &partitions)
	}
}

// startGeneration starts a goroutine per assigned partition, and one that notices the
// generation's end.
func (c *Consumer) startGeneration(runCtx, handleCtx context.Context, gen *kafkago.Generation, partitions *sync.WaitGroup) {
	c.m.generations.Inc()
	assigned := gen.Assignments[c.topic]
	ids := make([]int, 0, len(assigned))
	for _, a := range assigned {
		ids = append(ids, a.ID)
	}
	c.mu.Lock()
	c.inGeneration, c.generation, c.joinedOnce, c.lastJoinErr = true, gen.ID, true, nil
	c.mu.Unlock()
	c.logger.Info("generation started", zap.Int32("generation", gen.ID), zap.Ints("partitions", ids))

	partitions.Add(1)
	gen.Start(func(genCtx context.Context) {
		defer partitions.Done()
		select {
		case <-genCtx.Done():
		case <-runCtx.Done(): // with no partition assigned, nothing else ends the generation
		}
		c.mu.Lock()
		if c.inGeneration && c.generation == gen.ID {
			c.inGeneration, c.lostAt = false, time.Now()
		}
		c.mu.Unlock()
	})
	for _, a := range assigned {
		partitions.Add(1)
		gen.Start(func(genCtx context.Context) {
			defer partitions.Done()
			committed := a.Offset
			if committed < 0 {
				committed = -1
			}
			p := &partition{
				c: c, gen: gen, a: Assignment{Topic: c.topic, Partition: a.ID, Committed: committed},
				queue: max(c.cfg.QueueCapacity/len(assigned), 1),
				log:   c.logger.With(zap.Int("partition", a.ID), zap.Int32("generation", gen.ID)),
			}
			p.run(runCtx, genCtx, handleCtx)
		})
	}
}

func (c *Consumer) setWaitingTopic(waiting bool) {
	c.mu.Lock()
	c.waitingTopic = waiting
	c.mu.Unlock()
}

// own records partition id as owned (for lag and readiness) and returns its state.
func (c *Consumer) own(id int) *partState {
	label := strconv.Itoa(id)
	st := &partState{lag: func() prometheus.Gauge { return c.m.lag.WithLabelValues(label) }}
	st.position.Store(-1)
	c.mu.Lock()
	c.parts[id] = st
	c.mu.Unlock()
	return st
}

// disown forgets partition id and deletes its lag series: another member reports it now.
func (c *Consumer) disown(id int, st *partState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[id] == st {
		delete(c.parts, id)
		c.m.lag.DeleteLabelValues(strconv.Itoa(id))
	}
}

// setFailing records that a partition's handler or OnAssign (what) failed, or succeeded
// (err nil).
func (c *Consumer) setFailing(st *partState, what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		st.failingErr, st.failingSince = nil, time.Time{}
	case st.failingErr == nil:
		st.failingErr, st.failingSince, st.failingWhat = err, time.Now(), what
	default:
		st.failingErr, st.failingWhat = err, what
	}
}

// lagLoop sets the lag of every owned partition from the partitions' end offsets every
// lagInterval, so that the lag shows while a handler is stuck or no message comes.
func (c *Consumer) lagLoop(ctx context.Context) {
	cl := &kafkago.Client{Addr: kafkago.TCP(c.conn.Brokers...), Timeout: 10 * time.Second, Transport: c.transport}
	t := time.NewTicker(c.lagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
		for id := range c.parts {
			req.Topics[c.topic] = append(req.Topics[c.topic], kafkago.LastOffsetOf(id))
		}
		c.mu.Unlock()
		if len(req.Topics) == 0 {
			continue
		}
		resp, err := cl.ListOffsets(ctx, req)
		if err != nil {
			c.logger.Debug("lag: list offsets", zap.Error(err))
			continue
		}
		c.mu.Lock()
		for _, po := range resp.Topics[c.topic] {
			st, ok := c.parts[po.Partition]
			if !ok || po.Error != nil {
				continue
			}
			if pos := st.position.Load(); pos >= 0 {
				st.lag().Set(float64(max(po.LastOffset-pos, 0)))
			}
		}
		c.mu.Unlock()
	}
}

// kafkaLogger adapts kafka-go's error logger: its errors are retried internally and the
// ones that matter surface through Next or FetchMessage, so they are debug logs here.
func (c *Consumer) kafkaLogger(l *zap.Logger) kafkago.Logger {
	return kafkago.LoggerFunc(func(msg string, args ...any) { l.Debug(fmt.Sprintf(msg, args...)) })
}

// notifier returns a retry notification that logs and counts, and records the failure
// of what for readiness when st is not nil.
func (c *Consumer) notifier(log *zap.Logger, what string, st *partState, fields ...zap.Field) func(err error, attempt int, wait time.Duration) {
	return func(err error, attempt int, wait time.Duration) {
		c.m.retries.Inc()
		if st != nil {
			c.setFailing(st, what, err)
		}
		log.Warn("retrying "+what, append(fields, zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))...)
	}
}
