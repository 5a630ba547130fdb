// Package consume is the writer's pipeline: it consumes the enriched topic in a consumer
// group, batches each partition's events, inserts each batch into ClickHouse exactly once
// in effect, dead-letters what cannot be stored, and commits offsets only behind what is
// durably handled.
//
// It drives kafka-go's ConsumerGroup directly rather than the shared at-least-once loop of
// pkg/kafka, because exactly-once needs per-partition control the shared loop hides: on each
// assignment, the start offset of every partition is chosen by the writer (the highest
// offset ClickHouse holds + 1, when ahead of the committed one), and each partition's
// batches are cut, tokened and committed on their own. See the README for the argument.
package consume

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// Store is where batches go: ClickHouse in production (sink.Sink).
type Store interface {
	// Insert writes blocks as one insert under a deduplication token: stored whole, or not
	// at all, when they fall in one month.
	Insert(ctx context.Context, blocks []*rows.Block, token string) error
	// Offsets returns the highest offset stored per partition of topic.
	Offsets(ctx context.Context, topic string) (map[int]int64, error)
}

var _ Store = (*sink.Sink)(nil)

// DeadLetters receives messages that cannot be stored.
type DeadLetters interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

var _ DeadLetters = (*kafkago.Writer)(nil)

// Writer consumes the enriched topic into a Store.
type Writer struct {
	cfg      Config
	store    Store
	dlq      DeadLetters
	log      *zap.Logger
	m        *metrics
	retry    retrier
	permits  *semaphore.Weighted
	requests chan *request

	stopping chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// New returns a writer; Run starts it.
func New(cfg Config, store Store, dlq DeadLetters, log *zap.Logger, reg prometheus.Registerer) (*Writer, error) {
	if err := cfg.Validate("kafka"); err != nil {
		return nil, err
	}
	w := &Writer{
		cfg: cfg, store: store, dlq: dlq, log: log.Named("consume"), m: newMetrics(reg),
		permits:  semaphore.NewWeighted(int64(cfg.MaxPendingRows)),
		requests: make(chan *request),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	w.retry = retrier{initial: cfg.RetryInitial, max: cfg.RetryMax, attempts: cfg.RetryAttempts,
		onRetry: func(err error, attempt int, wait time.Duration) {
			w.m.retries.Inc()
			w.log.Warn("retrying", zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		}}
	return w, nil
}

// Run consumes until Stop is called (returns nil after flushing), ctx is cancelled, or a
// fatal error (retry budget spent, schema error) stops it.
func (w *Writer) Run(ctx context.Context) error {
	defer close(w.done)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Waiting for the topic and for the group's next generation end on Stop as well as on ctx.
	nextCtx, cancelNext := context.WithCancel(ctx)
	defer cancelNext()
	go func() {
		select {
		case <-w.stopping:
			cancelNext()
		case <-nextCtx.Done():
		}
	}()

	// kafka-go joins the group at once and, if the topic does not exist yet, never picks its
	// partitions up: wait for the enricher to create it.
	if err := kafka.WaitForTopic(nextCtx, w.cfg.Brokers, w.cfg.Topic, w.log); err != nil {
		if w.isStopping() {
			return nil
		}
		return err
	}
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                w.cfg.GroupID,
		Brokers:           w.cfg.Brokers,
		Topics:            []string{w.cfg.Topic},
		HeartbeatInterval: w.cfg.HeartbeatInterval,
		SessionTimeout:    w.cfg.SessionTimeout,
		RebalanceTimeout:  w.cfg.RebalanceTimeout,
		StartOffset:       kafkago.FirstOffset,
		JoinGroupBackoff:  time.Second,
		// A topic that gains partitions is rebalanced onto them.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ErrorLogger:            kafkago.LoggerFunc(func(msg string, args ...any) { w.log.Debug(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", w.cfg.GroupID, err)
	}
	// Inserters outlive the partition workers, which flush through them when they stop:
	// deferred calls run in reverse, so the group is closed (workers done) first.
	insCtx, stopInserters := context.WithCancel(ctx)
	var inserters sync.WaitGroup
	for range w.cfg.MaxConcurrentInserts {
		inserters.Go(func() { w.runInserter(insCtx) })
	}
	defer inserters.Wait()
	defer stopInserters()
	defer group.Close()

	for {
		gen, err := group.Next(nextCtx)
		switch {
		case err == nil:
		case w.isStopping():
			return context.Cause(ctx)
		case ctx.Err() != nil:
			return context.Cause(ctx)
		default:
			w.log.Warn("consumer group", zap.Error(err))
			continue
		}
		w.m.generations.Inc()
		if err := w.startGeneration(ctx, cancel, gen); err != nil {
			return err
		}
		// Wait for this generation to end (rebalance, Stop, fatal error): the group's next
		// Next returns only once every partition worker of this one has returned.
	}
}

// isStopping reports whether Stop was called.
func (w *Writer) isStopping() bool {
	select {
	case <-w.stopping:
		return true
	default:
		return false
	}
}

// Stop asks the writer to flush what it holds and return; it waits until Run returned or
// ctx expires.
func (w *Writer) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stopping) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("writer stop: %w", ctx.Err())
	}
}

// startGeneration chooses each assigned partition's start offset and starts its worker.
func (w *Writer) startGeneration(ctx context.Context, fail context.CancelCauseFunc, gen *kafkago.Generation) error {
	assigned := gen.Assignments[w.cfg.Topic]
	var stored, ends map[int]int64
	err := w.retry.do(ctx, func(ctx context.Context) error {
		var err error
		if stored, err = w.store.Offsets(ctx, w.cfg.Topic); err != nil {
			return err
		}
		ends, err = kafka.PartitionOffsets(ctx, w.cfg.Brokers, w.cfg.Topic)
		return err
	}, func(err error) bool { return sink.Classify(err) == sink.Retryable })
	if err != nil {
		return fmt.Errorf("read resume offsets: %w", err)
	}
	var commitMu sync.Mutex
	commit := func(partition int, next int64) error {
		commitMu.Lock()
		defer commitMu.Unlock()
		return gen.CommitOffsets(map[string]map[int]int64{w.cfg.Topic: {partition: next}})
	}
	ids := make([]int, 0, len(assigned))
	for _, a := range assigned {
		start := w.resumeOffset(a, stored, ends)
		ids = append(ids, a.ID)
		p := &partition{w: w, id: a.ID, start: start, commit: commit}
		gen.Start(func(genCtx context.Context) {
			if err := p.run(ctx, genCtx); err != nil {
				fail(fmt.Errorf("partition %d: %w", p.id, err))
			}
		})
	}
	w.log.Info("generation started", zap.Int32("generation", gen.ID), zap.Ints("partitions", ids))
	return nil
}

// resumeOffset is where a newly assigned partition starts: after the last row ClickHouse
// holds when that is ahead of the group's committed offset (the previous owner wrote but
// died before committing), else the committed offset. ClickHouse's offset is ignored when
// it lies beyond the partition's end: the topic was recreated, and its offsets mean nothing.
func (w *Writer) resumeOffset(a kafkago.PartitionAssignment, stored, ends map[int]int64) int64 {
	committed := a.Offset
	last, ok := stored[a.ID]
	if !ok {
		return committed
	}
	next := last + 1
	if end, known := ends[a.ID]; known && next > end {
		w.log.Warn("clickhouse holds offsets beyond the partition's end; using the committed offset",
			zap.String("topic", w.cfg.Topic), zap.Int("partition", a.ID), zap.Int64("offset", next), zap.Int64("end", end))
		return committed
	}
	if committed < 0 || next > committed {
		if committed >= 0 {
			w.m.resumed.Inc()
		}
		w.log.Info("resuming after clickhouse's offset", zap.Int("partition", a.ID),
			zap.Int64("offset", next), zap.Int64("committed", committed))
		return next
	}
	return committed
}

// token is the deduplication token of a block: the same Kafka messages always give the
// same token, so a retried or replayed insert of them is dropped by ClickHouse.
func token(topic string, partition int, b *rows.Block) string {
	first, last := b.KafkaOffset[0], b.KafkaOffset[b.Len()-1]
	return topic + ":" + strconv.Itoa(partition) + ":" + strconv.FormatInt(first, 10) + "-" +
		strconv.FormatInt(last, 10) + ":" + strconv.Itoa(b.Len())
}

// deadLetter builds the dead-letter record of a message.
func (w *Writer) deadLetter(m kafkago.Message, reason string, cause error) kafkago.Message {
	rec := event.DLQ{
		Reason:   reason,
		Service:  "writer",
		Error:    cause.Error(),
		FailedAt: event.NewTime(time.Now()),
		Source:   &event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
	}
	// The enriched topic holds pseudonyms only, so the payload can travel as it is.
	if json.Valid(m.Value) {
		rec.Payload = m.Value
	} else {
		const limit = 64 << 10
		rec.PayloadText = string(m.Value[:min(len(m.Value), limit)])
	}
	var e event.Enriched
	if json.Unmarshal(m.Value, &e) == nil {
		rec.SensorID, rec.EventID, rec.KeyVersion = e.SensorID, e.EventID, e.KeyVersion
	}
	value, err := json.Marshal(rec)
	if err != nil {
		// Only a bug can get here: the record holds strings and valid JSON.
		value = []byte(`{"reason":"` + reason + `","service":"writer"}`)
	}
	return kafkago.Message{Key: m.Key, Value: value}
}
