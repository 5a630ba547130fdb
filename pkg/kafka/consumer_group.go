package kafka

// The group side of the consumer: joining generations, owning partitions, lag, and the
// retry notifications that feed Ready.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

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
		RebalanceTimeout: c.cfg.RebalanceTimeout,
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
