package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/retry"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// ConsumerConfig says what to consume and how: the shared consumer settings of pkg/kafka.
// BatchSize and BatchWait bound a batch: alerts are written and offsets committed once per
// batch.
type ConsumerConfig = kafka.ConsumerConfig

// DefaultConsumerConfig consumes detections.enriched.v1 as group "correlator".
func DefaultConsumerConfig() ConsumerConfig {
	cfg := kafka.DefaultConsumerConfig(event.TopicEnriched, "correlator")
	cfg.BatchWait = 50 * time.Millisecond
	return cfg
}

// Consumer runs the streaming rules over a topic as a member of a consumer group. It owns
// its partitions' state: on each assignment it rebuilds a partition's engine (Rebuilder),
// then reads the partition from its committed offset, writes each batch's alerts to the
// sink and only then commits. pkg/kafka's consumer loop hides partition assignment, which
// state rebuilt per partition needs, hence kafka-go's ConsumerGroup here.
type Consumer struct {
	cfg     ConsumerConfig
	rules   []*rules.Rule
	ref     *reference.Snapshot
	rebuild Rebuilder
	sink    alert.Sink
	logger  *zap.Logger
	m       consumerMetrics

	stopping   chan struct{}
	stopOnce   sync.Once
	partitions sync.WaitGroup
	cancel     context.CancelCauseFunc
	assigned   atomic.Bool
}

type consumerMetrics struct {
	events       prometheus.Counter
	decodeErrors prometheus.Counter
	evaluations  *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	devices      *prometheus.GaugeVec
	rebuilt      prometheus.Counter
	rebuildSecs  prometheus.Histogram
	batchSecs    prometheus.Histogram
	eventTime    *prometheus.GaugeVec
}

// NewConsumer returns a consumer of the streaming rules among rs.
func NewConsumer(cfg ConsumerConfig, rs []*rules.Rule, ref *reference.Snapshot, rb Rebuilder, sink alert.Sink, logger *zap.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate("consumer"); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Consumer{
		cfg: cfg, rules: rs, ref: ref, rebuild: rb, sink: sink, stopping: make(chan struct{}),
		logger: logger.Named("streaming").With(zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID)),
		m: consumerMetrics{
			events:       f.NewCounter(prometheus.CounterOpts{Name: "vigie_correlator_events_total", Help: "Events evaluated by the streaming rules."}),
			decodeErrors: f.NewCounter(prometheus.CounterOpts{Name: "vigie_correlator_decode_errors_total", Help: "Messages that were not enriched events (skipped)."}),
			evaluations:  f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_streaming_evaluations_total", Help: "Events evaluated per streaming rule (after its where filter)."}, []string{"rule"}),
			alerts:       f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_correlator_streaming_alerts_total", Help: "Alert versions emitted per streaming rule."}, []string{"rule"}),
			latency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "vigie_correlator_event_to_alert_seconds", Help: "From the triggering event's Kafka timestamp to its alert being written.",
				Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"rule"}),
			devices:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigie_correlator_state_devices", Help: "Devices holding streaming state, per partition."}, []string{"partition"}),
			rebuilt:     f.NewCounter(prometheus.CounterOpts{Name: "vigie_correlator_rebuild_events_total", Help: "Events replayed from ClickHouse to rebuild partition state."}),
			rebuildSecs: f.NewHistogram(prometheus.HistogramOpts{Name: "vigie_correlator_rebuild_seconds", Help: "Time to rebuild one partition's state.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
			batchSecs:   f.NewHistogram(prometheus.HistogramOpts{Name: "vigie_correlator_batch_seconds", Help: "Time to evaluate a batch and write its alerts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
			eventTime:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigie_correlator_event_time_seconds", Help: "Highest event time seen per partition (Unix time)."}, []string{"partition"}),
		},
	}, nil
}

// Assigned reports whether the consumer has joined its group and holds a generation.
func (c *Consumer) Assigned() bool { return c.assigned.Load() }

var errStopped = errors.New("consumer stopped")

// Run joins the group and consumes until Stop, ctx's end or a partition's failure (which
// it returns).
func (c *Consumer) Run(ctx context.Context) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: c.cfg.GroupID, Brokers: c.cfg.Brokers, Topics: []string{c.cfg.Topic},
		StartOffset: kafkago.FirstOffset, HeartbeatInterval: c.cfg.HeartbeatInterval,
		SessionTimeout: c.cfg.SessionTimeout, RebalanceTimeout: c.cfg.SessionTimeout,
		JoinGroupBackoff: 500 * time.Millisecond,
		// Rebalance when partitions are added, so that new partitions get an owner.
		WatchPartitionChanges: true, PartitionWatchInterval: 5 * time.Second,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) { c.logger.Warn(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.cfg.GroupID, err)
	}
	defer func() {
		if err := cg.Close(); err != nil {
			c.logger.Warn("leave group", zap.Error(err))
		}
	}()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.cancel = cancel
	c.logger.Info("consuming", zap.Strings("rules", rules.Names(NewEngine(c.rules, nil).Rules())))
	for {
		gen, err := cg.Next(runCtx)
		if err != nil {
			if cause := context.Cause(runCtx); cause != nil {
				if errors.Is(cause, errStopped) || errors.Is(cause, context.Canceled) {
					return nil
				}
				return cause
			}
			if errors.Is(err, kafkago.ErrGroupClosed) {
				return nil
			}
			return fmt.Errorf("join group %s: %w", c.cfg.GroupID, err)
		}
		c.assigned.Store(true)
		var parts []int
		for _, a := range gen.Assignments[c.cfg.Topic] {
			parts = append(parts, a.ID)
			c.partitions.Add(1)
			gen.Start(func(genCtx context.Context) {
				defer c.partitions.Done()
				if err := c.runPartition(runCtx, genCtx, gen, a); err != nil {
					cancel(fmt.Errorf("partition %d: %w", a.ID, err))
				}
			})
		}
		c.logger.Info("partitions assigned", zap.Int32("generation", gen.ID), zap.Ints("partitions", parts))
	}
}

// Stop lets each partition finish and commit its batch in flight, then leaves the group.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stopping) })
	done := make(chan struct{})
	go func() {
		c.partitions.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if c.cancel != nil {
		c.cancel(errStopped)
	}
	return nil
}

func (c *Consumer) runPartition(runCtx, genCtx context.Context, gen *kafkago.Generation, a kafkago.PartitionAssignment) error {
	p := a.ID
	log := c.logger.With(zap.Int("partition", p))
	eng := NewEngine(c.rules, c.ref)
	// emitFrom: events below the committed offset were fully handled by the previous owner
	// (their alerts written): replaying them rebuilds state without emitting again.
	emitFrom, start := a.Offset, a.Offset
	if a.Offset < 0 {
		emitFrom, start = 0, kafkago.FirstOffset
	} else {
		began := time.Now()
		var next int64
		var n int
		err := retry.Default.Do(runCtx, func(ctx context.Context) error {
			eng = NewEngine(c.rules, c.ref)
			var err error
			next, n, err = c.rebuild.Rebuild(ctx, eng, c.cfg.Topic, p, a.Offset)
			return err
		}, func(err error) { log.Info("retrying rebuild", zap.Error(err)) })
		if err != nil {
			return err
		}
		if next < a.Offset {
			// ClickHouse lags behind this group: read the gap from Kafka, without emitting.
			start = next
			if next == 0 {
				start = kafkago.FirstOffset
			}
		}
		c.m.rebuilt.Add(float64(n))
		c.m.rebuildSecs.Observe(time.Since(began).Seconds())
		log.Info("state rebuilt", zap.Int64("committed", a.Offset), zap.Int64("clickhouse_next", next), zap.Int("events", n),
			zap.Int("devices", eng.Devices()), zap.Duration("took", time.Since(began)))
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.cfg.Brokers, Topic: c.cfg.Topic, Partition: p, MinBytes: 1, MaxBytes: c.cfg.MaxBytes, MaxWait: 250 * time.Millisecond,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) { log.Warn(fmt.Sprintf(msg, args...)) }),
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("seek partition %d to %d: %w", p, start, err)
	}
	fetchCtx, cancelFetch := context.WithCancel(runCtx)
	defer cancelFetch()
	go func() {
		select {
		case <-genCtx.Done():
		case <-c.stopping:
		case <-fetchCtx.Done():
		}
		cancelFetch()
	}()
	h := &partitionHandler{c: c, eng: eng, partition: p, label: strconv.Itoa(p), emitFrom: emitFrom}
	batch := make([]kafkago.Message, 0, c.cfg.BatchSize)
	for {
		var err error
		batch, err = c.fill(fetchCtx, r, batch[:0])
		if len(batch) > 0 {
			// The batch in flight finishes even if the generation ends meanwhile.
			if herr := h.handle(runCtx, batch); herr != nil {
				return herr
			}
			next := batch[len(batch)-1].Offset + 1
			if cerr := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: {p: next}}); cerr != nil {
				log.Warn("commit", zap.Int64("offset", next), zap.Error(cerr))
				return nil // the next owner resumes from the last commit; alerts are idempotent
			}
		}
		if err != nil {
			if fetchCtx.Err() != nil {
				log.Info("partition released")
				return nil
			}
			return fmt.Errorf("fetch partition %d: %w", p, err)
		}
	}
}

// fill reads one message (waiting as long as needed), then more until the batch is full or
// BatchWait has passed.
func (c *Consumer) fill(ctx context.Context, r *kafkago.Reader, batch []kafkago.Message) ([]kafkago.Message, error) {
	msg, err := r.FetchMessage(ctx)
	if err != nil {
		return batch, err
	}
	batch = append(batch, msg)
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		msg, err := r.FetchMessage(waitCtx)
		if err != nil {
			if waitCtx.Err() != nil && ctx.Err() == nil {
				return batch, nil
			}
			return batch, err
		}
		batch = append(batch, msg)
	}
	return batch, nil
}

// partitionHandler evaluates one partition's batches.
type partitionHandler struct {
	c         *Consumer
	eng       *Engine
	partition int
	label     string
	emitFrom  int64
	prevEvals []uint64
	alerts    []alert.Alert
	triggers  []time.Time
	dec       *event.Decoder
}

func (h *partitionHandler) handle(ctx context.Context, batch []kafkago.Message) error {
	began := time.Now()
	h.alerts, h.triggers = h.alerts[:0], h.triggers[:0]
	if h.dec == nil {
		h.dec = event.NewDecoder()
	}
	var e event.Enriched
	for i := range batch {
		m := &batch[i]
		if err := h.dec.Enriched(m.Value, &e); err != nil || e.ObservedAt.IsZero() {
			h.c.m.decodeErrors.Inc()
			continue
		}
		n := len(h.alerts)
		h.alerts = h.eng.Observe(&e, m.Offset >= h.emitFrom, h.alerts)
		for range h.alerts[n:] {
			h.triggers = append(h.triggers, m.Time)
		}
	}
	if len(h.alerts) > 0 {
		err := retry.Default.Do(ctx, func(ctx context.Context) error { return h.c.sink.Write(ctx, h.alerts) },
			func(err error) { h.c.logger.Info("retrying alert write", zap.Error(err)) })
		if err != nil {
			return err
		}
		for i, a := range h.alerts {
			h.c.m.alerts.WithLabelValues(a.Rule).Inc()
			h.c.m.latency.WithLabelValues(a.Rule).Observe(time.Since(h.triggers[i]).Seconds())
		}
	}
	st := h.eng.Stats()
	if h.prevEvals == nil {
		h.prevEvals = make([]uint64, len(st.Evaluations))
	}
	for i, r := range h.eng.Rules() {
		h.c.m.evaluations.WithLabelValues(r.ID).Add(float64(st.Evaluations[i] - h.prevEvals[i]))
		h.prevEvals[i] = st.Evaluations[i]
	}
	h.c.m.events.Add(float64(len(batch)))
	h.c.m.devices.WithLabelValues(h.label).Set(float64(h.eng.Devices()))
	h.c.m.eventTime.WithLabelValues(h.label).Set(float64(h.eng.MaxEventTime().Unix()))
	h.c.m.batchSecs.Observe(time.Since(began).Seconds())
	return nil
}
