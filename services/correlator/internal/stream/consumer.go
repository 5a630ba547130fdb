package stream

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Consumer runs the streaming rules over the enriched topic as one member of a consumer
// group (pkg/kafka's Consumer). It keeps one engine per assigned partition: on assignment
// the partition's engine is rebuilt from ClickHouse (Rebuilder) and the partition is read
// from there; each batch of the partition is evaluated on its engine and the batch is done
// once its alerts are durable in the sink (then the consumer commits it); on revocation the
// engine is dropped.
type Consumer struct {
	kc      *kafka.Consumer
	rules   atomic.Pointer[ruleSet]
	ref     atomic.Pointer[reference.Snapshot]
	rebuild Rebuilder
	engine  EngineConfig
	sink    alert.Sink
	logger  *zap.Logger
	m       metrics

	mu    sync.Mutex
	parts map[int]*partition

	// switchRetry is how long a partition waits before it tries again to switch to new
	// rules while ClickHouse does not hold every event below its batch; after switchWait it
	// switches anyway (the events ClickHouse lacks then are, as a rule, those the writer
	// refused, which the engine skips too).
	switchRetry, switchWait time.Duration
}

// ruleSet is the rules in force, numbered so that a partition knows when they changed.
type ruleSet struct {
	rules   []*rules.Rule
	version uint64
}

// Deps is what the streaming consumer evaluates with and writes to.
type Deps struct {
	Rules     []*rules.Rule // the streaming rules among them are evaluated
	Reference *reference.Snapshot
	Rebuilder Rebuilder
	Sink      alert.Sink
	// Engine bounds each partition's event clock and remembered identities (zero:
	// DefaultEngineConfig).
	Engine EngineConfig
	// Metrics takes the correlator's own metrics (names without the vigie_correlator_
	// prefix: pass the service's prefixing Registerer); Registry takes the Kafka
	// consumer's shared vigie_kafka_consumer_* metrics (the unprefixed registry).
	Metrics, Registry prometheus.Registerer
}

type metrics struct {
	events       prometheus.Counter
	decodeErrors prometheus.Counter
	sinkErrors   prometheus.Counter
	evaluations  *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	devices      *prometheus.GaugeVec
	rebuilt      prometheus.Counter
	rebuildSecs  prometheus.Histogram
	batchSecs    prometheus.Histogram
	eventTime    *prometheus.GaugeVec
	watermark    *prometheus.GaugeVec
	identities   *prometheus.GaugeVec
	refused      *prometheus.CounterVec
	duplicates   prometheus.Counter
	idDropped    prometheus.Counter
	overflow     *prometheus.CounterVec
	entries      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	return metrics{
		events:       f.NewCounter(prometheus.CounterOpts{Name: "events_total", Help: "Events evaluated by the streaming rules."}),
		decodeErrors: f.NewCounter(prometheus.CounterOpts{Name: "decode_errors_total", Help: "Messages that were not enriched events (skipped)."}),
		sinkErrors:   f.NewCounter(prometheus.CounterOpts{Name: "streaming_sink_errors_total", Help: "Failed writes of a batch's alerts (the batch is retried)."}),
		evaluations:  f.NewCounterVec(prometheus.CounterOpts{Name: "streaming_evaluations_total", Help: "Events evaluated per streaming rule (after its where filter)."}, []string{"rule"}),
		alerts:       f.NewCounterVec(prometheus.CounterOpts{Name: "streaming_alerts_total", Help: "Alert versions emitted per streaming rule."}, []string{"rule"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "event_to_alert_seconds", Help: "From the triggering event's Kafka timestamp to its alert being written.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"rule"}),
		devices:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "state_devices", Help: "Devices holding streaming state, per partition."}, []string{"partition"}),
		rebuilt:     f.NewCounter(prometheus.CounterOpts{Name: "rebuild_events_total", Help: "Events replayed from ClickHouse to rebuild partition state."}),
		rebuildSecs: f.NewHistogram(prometheus.HistogramOpts{Name: "rebuild_seconds", Help: "Time to rebuild one partition's state.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		batchSecs:   f.NewHistogram(prometheus.HistogramOpts{Name: "batch_seconds", Help: "Time to evaluate a batch and write its alerts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		eventTime:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "event_time_seconds", Help: "Highest event time applied per partition (Unix time)."}, []string{"partition"}),
		watermark:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "streaming_watermark_seconds", Help: "Event-time watermark per partition, from its sensors' clocks (Unix time)."}, []string{"partition"}),
		identities:  f.NewGaugeVec(prometheus.GaugeOpts{Name: "dedup_identities", Help: "Identities (sensor_id, event_id) remembered per partition to ignore second deliveries."}, []string{"partition"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{Name: "events_refused_total",
			Help: "Events not applied for their time: future (beyond receipt or wall time plus max_skew), beyond_retention, late (older than every matching rule's horizon behind the watermark)."}, []string{"reason"}),
		duplicates: f.NewCounter(prometheus.CounterOpts{Name: "duplicates_total", Help: "Second deliveries of an identity already applied (ignored)."}),
		idDropped:  f.NewCounter(prometheus.CounterOpts{Name: "dedup_dropped_total", Help: "Identities forgotten before their horizon because dedup.max_identities was reached."}),
		overflow: f.NewCounterVec(prometheus.CounterOpts{Name: "state_overflow_total",
			Help: "What the streaming state caps kept out, per rule: kind values (sightings of a value not tracked, state.max_values reached for a device), budget (entries forgotten early, state.max_entries reached for a partition)."}, []string{"rule", "kind"}),
		entries: f.NewGaugeVec(prometheus.GaugeOpts{Name: "state_entries", Help: "Streaming state entries (devices, values, events, first-step events, open findings) per partition, bounded by state.max_entries."}, []string{"partition"}),
	}
}

// partition is one assigned partition's streaming state, used by that partition's hooks
// and handler only (which pkg/kafka runs one after the other).
type partition struct {
	eng   *Engine
	id    int
	label string
	// emitFrom: events below the committed offset were fully handled by the previous owner
	// (their alerts written): reading them again rebuilds state without emitting.
	emitFrom int64
	// evaluated is the offset after the last message evaluated. A batch whose alerts could
	// not be written is handed over again: its messages are not evaluated twice, their
	// alerts (pending) are written again.
	evaluated int64
	pending   []alert.Alert
	triggers  []time.Time // Kafka time of the event that raised each pending alert
	prev      Stats       // counted so far
	dec       *event.Decoder
	// rules is the version of the rules the engine runs. While newer rules wait for
	// ClickHouse, switchSince is the first try and switchAt the next.
	rules                 uint64
	switchSince, switchAt time.Time
	// overflowLogged is when the state caps' overflow was last logged (at most once a
	// minute per partition; the metric counts all of it).
	overflowLogged time.Time
}

// NewConsumer returns a member of group cfg.GroupID evaluating the streaming rules of
// deps.Rules over topic. It fails only on a bad configuration (a rule needing more state
// than deps.Engine.State allows included).
func NewConsumer(conn kafka.Config, cfg kafka.ConsumerConfig, topic string, deps Deps, logger *zap.Logger) (*Consumer, error) {
	if deps.Engine == (EngineConfig{}) {
		deps.Engine = DefaultEngineConfig()
	}
	if err := deps.Engine.State.Check("state", deps.Rules); err != nil {
		return nil, err
	}
	c := &Consumer{
		rebuild: deps.Rebuilder, engine: deps.Engine, sink: deps.Sink, parts: map[int]*partition{},
		logger:      logger.Named("streaming").With(zap.String("topic", topic), zap.String("group", cfg.GroupID)),
		m:           newMetrics(deps.Metrics),
		switchRetry: 10 * time.Second,
		switchWait:  time.Minute,
	}
	c.rules.Store(&ruleSet{rules: deps.Rules, version: 1})
	c.ref.Store(deps.Reference)
	kc, err := kafka.NewConsumer(conn, cfg, topic, c.handle, kafka.Hooks{OnAssign: c.assign, OnRevoke: c.revoke}, logger.Named("streaming"), deps.Registry)
	if err != nil {
		return nil, err
	}
	c.kc = kc
	return c, nil
}

// Rules lists the streaming rules in force.
func (c *Consumer) Rules() []*rules.Rule { return NewEngine(c.rules.Load().rules, nil).Rules() }

// SetRules puts the streaming rules among rs in force (a reload). Each partition switches at
// its next batch, as a new owner would start: it rebuilds an engine with the new rules from
// the events below the batch in ClickHouse and carries on with it, so that the new rules'
// state (and their open findings) is what it would be had they always run. While
// ClickHouse does not yet hold every event below the batch (the writer lags), the partition
// keeps its engine and tries again after switchRetry.
func (c *Consumer) SetRules(rs []*rules.Rule) {
	for {
		cur := c.rules.Load()
		if c.rules.CompareAndSwap(cur, &ruleSet{rules: rs, version: cur.version + 1}) {
			return
		}
	}
}

// Run consumes until Stop or ctx's end; transient failures (Kafka, ClickHouse, the sinks)
// are retried and never end it.
func (c *Consumer) Run(ctx context.Context) error {
	c.logger.Info("consuming", zap.Strings("rules", rules.Names(c.Rules())))
	return c.kc.Run(ctx)
}

// Stop lets each partition finish and commit its batch in flight, then leaves the group.
func (c *Consumer) Stop(ctx context.Context) error { return c.kc.Stop(ctx) }

// Ready is the readiness check: a member of the group whose handlers are not failing.
func (c *Consumer) Ready(ctx context.Context) error { return c.kc.Ready(ctx) }

// SetReference replaces the reference data (facility coordinates for events that lack
// them); each partition takes it from its next batch on.
func (c *Consumer) SetReference(ref *reference.Snapshot) { c.ref.Store(ref) }

// assign rebuilds the partition's engine from the events below the committed offset and
// returns where to read from: the committed offset or, when ClickHouse lags behind it,
// the offset after the last event ClickHouse holds (the gap is read from Kafka, still
// without emitting).
func (c *Consumer) assign(ctx context.Context, a kafka.Assignment) (int64, error) {
	log := c.logger.With(zap.Int("partition", a.Partition))
	rs := c.rules.Load()
	p := &partition{eng: c.newEngine(rs.rules), id: a.Partition, label: strconv.Itoa(a.Partition), dec: event.NewDecoder(), rules: rs.version}
	start := a.Committed
	if a.Committed < 0 {
		start = kafka.FirstOffset
	} else {
		began := time.Now()
		next, n, err := c.rebuild.Rebuild(ctx, p.eng, a.Topic, a.Partition, a.Committed)
		if err != nil {
			return 0, err // retried by the consumer, on a fresh engine
		}
		p.emitFrom = a.Committed
		if next < a.Committed {
			start = next
			if next == 0 {
				start = kafka.FirstOffset
			}
		}
		p.skipStats()
		c.m.rebuilt.Add(float64(n))
		c.m.rebuildSecs.Observe(time.Since(began).Seconds())
		log.Info("state rebuilt", zap.Int64("committed", a.Committed), zap.Int64("clickhouse_next", next), zap.Int("events", n),
			zap.Int("devices", p.eng.Devices()), zap.Duration("took", time.Since(began)))
	}
	c.mu.Lock()
	c.parts[a.Partition] = p
	c.mu.Unlock()
	return start, nil
}

// revoke drops the partition's engine.
func (c *Consumer) revoke(a kafka.Assignment) {
	c.mu.Lock()
	delete(c.parts, a.Partition)
	c.mu.Unlock()
	label := strconv.Itoa(a.Partition)
	c.m.devices.DeleteLabelValues(label)
	c.m.eventTime.DeleteLabelValues(label)
	c.m.watermark.DeleteLabelValues(label)
	c.m.identities.DeleteLabelValues(label)
	c.m.entries.DeleteLabelValues(label)
	c.logger.Info("partition released", zap.Int("partition", a.Partition))
}

func (c *Consumer) partition(id int) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[id]
}

// handle evaluates one partition's batch on its engine and writes the alerts raised; it
// returns nil once they are durable, so that the consumer commits the batch.
func (c *Consumer) handle(ctx context.Context, batch []kafka.Message) error {
	if len(batch) == 0 {
		return nil
	}
	p := c.partition(batch[0].Partition)
	if p == nil {
		return fmt.Errorf("partition %d: batch before its assignment", batch[0].Partition)
	}
	began := time.Now()
	// New rules take over at a batch handed over for the first time (not one whose alerts
	// are still to be written).
	if rs := c.rules.Load(); rs.version != p.rules && len(p.pending) == 0 && batch[0].Offset >= p.evaluated && !began.Before(p.switchAt) {
		c.switchRules(ctx, p, rs, &batch[0])
	}
	p.eng.SetReference(c.ref.Load())
	var e event.Enriched
	n := 0
	for i := range batch {
		m := &batch[i]
		if m.Offset < p.evaluated {
			continue
		}
		n++
		if err := p.dec.Enriched(m.Value, &e); err != nil || e.ObservedAt.IsZero() {
			c.m.decodeErrors.Inc()
			continue
		}
		k := len(p.pending)
		p.pending = p.eng.Observe(&e, m.Offset >= p.emitFrom, p.pending)
		for range p.pending[k:] {
			p.triggers = append(p.triggers, m.Time)
		}
	}
	p.evaluated = max(p.evaluated, batch[len(batch)-1].Offset+1)
	c.count(p, n)
	if len(p.pending) > 0 {
		if err := c.sink.Write(ctx, p.pending); err != nil {
			c.m.sinkErrors.Inc()
			return fmt.Errorf("partition %d: write %d alerts: %w", batch[0].Partition, len(p.pending), err)
		}
		for i, a := range p.pending {
			c.m.alerts.WithLabelValues(a.Rule).Inc()
			c.m.latency.WithLabelValues(a.Rule).Observe(time.Since(p.triggers[i]).Seconds())
		}
		clear(p.pending) // the next batch reuses the slice: drop the alerts' strings
		p.pending, p.triggers = p.pending[:0], p.triggers[:0]
	}
	c.m.batchSecs.Observe(time.Since(began).Seconds())
	return nil
}

// switchRules rebuilds p's engine with rs from the events below first, in ClickHouse, when
// ClickHouse holds all of them (or switchWait has passed). Otherwise, or when ClickHouse
// fails, p keeps its engine (the old rules keep running) and tries again after switchRetry.
func (c *Consumer) switchRules(ctx context.Context, p *partition, rs *ruleSet, first *kafka.Message) {
	began := time.Now()
	eng := c.newEngine(rs.rules)
	next, n, err := c.rebuild.Rebuild(ctx, eng, first.Topic, first.Partition, first.Offset)
	log := c.logger.With(zap.Int("partition", first.Partition), zap.Int64("offset", first.Offset), zap.Int64("clickhouse_next", next))
	if err != nil {
		p.switchAt = began.Add(c.switchRetry)
		log.Warn("new rules wait: rebuilding the partition's state with them failed", zap.Error(err))
		return
	}
	if next < first.Offset {
		if p.switchSince.IsZero() {
			p.switchSince = began
		}
		if began.Sub(p.switchSince) < c.switchWait {
			p.switchAt = began.Add(c.switchRetry)
			log.Info("new rules wait for ClickHouse to hold the events below the batch")
			return
		}
		log.Warn("new rules in force without the events ClickHouse still lacks below the batch", zap.Duration("waited", began.Sub(p.switchSince)))
	}
	p.eng, p.rules, p.switchSince, p.switchAt = eng, rs.version, time.Time{}, time.Time{}
	p.skipStats()
	c.m.rebuilt.Add(float64(n))
	c.m.rebuildSecs.Observe(time.Since(began).Seconds())
	log.Info("new rules in force", zap.Strings("rules", rules.Names(eng.Rules())), zap.Int("events", n), zap.Int("devices", eng.Devices()), zap.Duration("took", time.Since(began)))
}

// newEngine is a partition's engine for rs.
func (c *Consumer) newEngine(rs []*rules.Rule) *Engine {
	cfg := c.engine
	if cfg == (EngineConfig{}) {
		cfg = DefaultEngineConfig()
	}
	return NewEngineConfig(rs, c.ref.Load(), cfg)
}

// skipStats makes the counts of a rebuild uncounted: they were counted when first made.
func (p *partition) skipStats() {
	p.prev = p.eng.Stats()
	p.prev.Evaluations = append([]uint64(nil), p.prev.Evaluations...)
	p.prev.Overflow = append([]Overflow(nil), p.prev.Overflow...)
}

// count updates the metrics after n more events of p were evaluated.
func (c *Consumer) count(p *partition, n int) {
	st := p.eng.Stats()
	if p.prev.Evaluations == nil {
		p.prev.Evaluations = make([]uint64, len(st.Evaluations))
		p.prev.Overflow = make([]Overflow, len(st.Overflow))
	}
	var over []zap.Field
	for i, r := range p.eng.Rules() {
		c.m.evaluations.WithLabelValues(r.ID).Add(float64(st.Evaluations[i] - p.prev.Evaluations[i]))
		p.prev.Evaluations[i] = st.Evaluations[i]
		o, prev := st.Overflow[i], p.prev.Overflow[i]
		if o != prev {
			c.m.overflow.WithLabelValues(r.ID, "values").Add(float64(o.Values - prev.Values))
			c.m.overflow.WithLabelValues(r.ID, "budget").Add(float64(o.Budget - prev.Budget))
			over = append(over, zap.Dict(r.ID, zap.Uint64("values", o.Values), zap.Uint64("budget", o.Budget)))
			p.prev.Overflow[i] = o
		}
	}
	if len(over) > 0 && time.Since(p.overflowLogged) >= time.Minute {
		p.overflowLogged = time.Now()
		c.logger.Warn("streaming state at its caps: what they keep out is not counted by the rules (state.max_values, state.max_entries)",
			append(over, zap.Int("partition", p.id), zap.Int("entries", p.eng.Entries()), zap.Uint64("sheds", st.Sheds))...)
	}
	c.m.refused.WithLabelValues("future").Add(float64(st.Future - p.prev.Future))
	c.m.refused.WithLabelValues("beyond_retention").Add(float64(st.BeyondRetention - p.prev.BeyondRetention))
	c.m.refused.WithLabelValues("late").Add(float64(st.Late - p.prev.Late))
	c.m.duplicates.Add(float64(st.Duplicates - p.prev.Duplicates))
	c.m.idDropped.Add(float64(st.IdentitiesDropped - p.prev.IdentitiesDropped))
	p.prev.Future, p.prev.BeyondRetention, p.prev.Late = st.Future, st.BeyondRetention, st.Late
	p.prev.Duplicates, p.prev.IdentitiesDropped = st.Duplicates, st.IdentitiesDropped
	c.m.events.Add(float64(n))
	c.m.devices.WithLabelValues(p.label).Set(float64(p.eng.Devices()))
	c.m.identities.WithLabelValues(p.label).Set(float64(p.eng.Identities()))
	c.m.entries.WithLabelValues(p.label).Set(float64(p.eng.Entries()))
	c.m.eventTime.WithLabelValues(p.label).Set(float64(p.eng.MaxEventTime().Unix()))
	c.m.watermark.WithLabelValues(p.label).Set(float64(p.eng.Watermark().Unix()))
}
