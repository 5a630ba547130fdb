// Package pipeline is the enricher's Kafka handler: it enriches a batch of one raw
// partition's messages with the current reference table, produces the enriched events and the
// dead letters, and returns only once Kafka acknowledged all of them, so that the consumer
// commits nothing that is not durably handed on (at-least-once from raw to enriched). A
// produce that fails fails the batch: the consumer retries it with its retry policy.
package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
)

// Writer is what the pipeline produces to: a synchronous Kafka producer. *kafka.Producer
// implements it.
type Writer interface {
	Write(ctx context.Context, msgs ...kafka.Message) error
}

var _ Writer = (*kafka.Producer)(nil)

// Pipeline enriches and forwards batches. Handle is safe for concurrent use: the consumer
// runs one handler per partition.
type Pipeline struct {
	tables   *atomic.Pointer[enrich.Table]
	enriched destination
	dlq      destination
	logger   *zap.Logger
	metrics  metrics
	now      func() time.Time
}

// destination is a writer whose writes go one at a time: a partition's share of a batch is
// then never split between two produce requests by another partition's batch, so it
// succeeds or fails whole and a retried batch cannot reorder a key's events.
type destination struct {
	topic string
	mu    *sync.Mutex
	w     Writer
}

type metrics struct {
	events     *prometheus.CounterVec
	unknownTAC prometheus.Counter
	unknownOp  prometheus.Counter
	enrich     prometheus.Histogram
	produce    *prometheus.HistogramVec
	failures   *prometheus.CounterVec
}

// Outcome labels of vigie_enricher_events_total.
const (
	LabelEnriched      = "enriched"
	LabelUnknownSensor = event.ReasonUnknownSensor
	LabelDecodeFailed  = event.ReasonDecodeFailed
)

// New builds a pipeline reading its reference table from tables (swapped on reload).
func New(tables *atomic.Pointer[enrich.Table], enriched, dlq Writer, logger *zap.Logger, reg prometheus.Registerer) *Pipeline {
	f := promauto.With(reg)
	m := metrics{
		events:     f.NewCounterVec(prometheus.CounterOpts{Name: "events_total", Help: "Raw events handled by outcome: enriched, unknown_sensor (to the DLQ), decode_failed (to the DLQ)."}, []string{"outcome"}),
		unknownTAC: f.NewCounter(prometheus.CounterOpts{Name: "unknown_tac_total", Help: "Enriched events whose TAC is not in the reference (model marked unknown)."}),
		unknownOp:  f.NewCounter(prometheus.CounterOpts{Name: "unknown_operator_total", Help: "Enriched events whose MCC/MNC is not in the reference (operator marked unknown)."}),
		enrich:     f.NewHistogram(prometheus.HistogramOpts{Name: "enrich_batch_seconds", Help: "Time to enrich one batch (no I/O).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)}),
		produce:    f.NewHistogramVec(prometheus.HistogramOpts{Name: "produce_seconds", Help: "Time until Kafka acknowledged a batch, by topic.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"topic"}),
		failures:   f.NewCounterVec(prometheus.CounterOpts{Name: "produce_failures_total", Help: "Produce calls that failed, by topic: the batch failed and the consumer handles it again."}, []string{"topic"}),
	}
	for _, o := range []string{LabelEnriched, LabelUnknownSensor, LabelDecodeFailed} {
		m.events.WithLabelValues(o)
	}
	for _, t := range []string{"enriched", "dlq"} {
		m.failures.WithLabelValues(t)
	}
	return &Pipeline{tables: tables, enriched: destination{"enriched", &sync.Mutex{}, enriched}, dlq: destination{"dlq", &sync.Mutex{}, dlq},
		logger: logger.Named("pipeline"), metrics: m, now: time.Now}
}

// Handle is the consumer's handler: enrich, produce, wait for the acknowledgements.
func (p *Pipeline) Handle(ctx context.Context, msgs []kafka.Message) error {
	start := time.Now()
	// One table for the whole batch: a reload swaps the pointer for the next batch.
	table := p.tables.Load()
	now := event.NewTime(p.now())
	headers := []kafkago.Header{{Key: "ref_version", Value: []byte(table.Snapshot().Version())}}
	out := make([]kafka.Message, 0, len(msgs))
	var dead []kafka.Message
	var enriched, unknownSensor, undecodable, unknownTAC, unknownOp int
	for i := range msgs {
		m := &msgs[i]
		res := enrich.Enrich(table, m.Value, event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, now)
		msg := kafka.Message{Key: res.Key, Value: res.Value, Headers: headers}
		if res.Route != nil {
			// The device's partition follows its route, which a key rotation leaves.
			msg.Headers = append(headers[:len(headers):len(headers)], kafkago.Header{Key: kafka.RouteHeader, Value: res.Route})
		}
		switch res.Outcome {
		case enrich.Enriched:
			out = append(out, msg)
			enriched++
			if res.TACUnknown {
				unknownTAC++
			}
			if res.OperatorUnknown {
				unknownOp++
			}
		case enrich.UnknownSensor:
			dead = append(dead, msg)
			unknownSensor++
		default:
			dead = append(dead, msg)
			undecodable++
			p.logger.Warn("undecodable raw message to the dlq", zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset))
		}
	}
	p.metrics.enrich.Observe(time.Since(start).Seconds())

	if err := p.produce(ctx, p.enriched, out); err != nil {
		return err
	}
	if err := p.produce(ctx, p.dlq, dead); err != nil {
		return err
	}
	p.metrics.events.WithLabelValues(LabelEnriched).Add(float64(enriched))
	p.metrics.events.WithLabelValues(LabelUnknownSensor).Add(float64(unknownSensor))
	p.metrics.events.WithLabelValues(LabelDecodeFailed).Add(float64(undecodable))
	p.metrics.unknownTAC.Add(float64(unknownTAC))
	p.metrics.unknownOp.Add(float64(unknownOp))
	return nil
}

// produce writes msgs and waits for Kafka's acknowledgement. A failure fails the batch; the
// consumer retries all of it, so messages acknowledged before the failure are produced again
// (at-least-once). A partition's messages of one batch travel in one produce request (the
// producer's batch size is at least the consumer's, and writes to a destination go one at a
// time), so they succeed or fail together and the retry keeps each key's order.
func (p *Pipeline) produce(ctx context.Context, d destination, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	d.mu.Lock()
	err := d.w.Write(ctx, msgs...)
	d.mu.Unlock()
	if err != nil {
		p.metrics.failures.WithLabelValues(d.topic).Inc()
		return fmt.Errorf("produce %d messages to %s: %w", len(msgs), d.topic, err)
	}
	p.metrics.produce.WithLabelValues(d.topic).Observe(time.Since(start).Seconds())
	return nil
}
