// Package pipeline is the enricher's Kafka handler: it enriches a batch of raw messages with
// the current reference table, produces the enriched events and the dead letters, and
// returns only once Kafka acknowledged all of them, so that the consumer commits nothing that
// is not durably handed on (at-least-once from raw to enriched).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
)

// Writer is what the pipeline produces to: a synchronous Kafka writer. *kafkago.Writer
// implements it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

var _ Writer = (*kafkago.Writer)(nil)

// Pipeline enriches and forwards batches.
type Pipeline struct {
	tables   *atomic.Pointer[enrich.Table]
	enriched Writer
	dlq      Writer
	logger   *zap.Logger
	metrics  metrics
	// retry bounds how long a produce is retried before the handler gives up and the
	// consumer stops without committing.
	retryMax time.Duration
	now      func() time.Time
}

type metrics struct {
	events     *prometheus.CounterVec
	unknownTAC prometheus.Counter
	unknownOp  prometheus.Counter
	enrich     prometheus.Histogram
	produce    *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	giveUps    *prometheus.CounterVec
}

// Outcome labels of vigie_enricher_events_total.
const (
	LabelEnriched      = "enriched"
	LabelUnknownSensor = event.ReasonUnknownSensor
	LabelDecodeFailed  = event.ReasonDecodeFailed
)

// New builds a pipeline reading its reference table from tables (swapped on reload).
func New(tables *atomic.Pointer[enrich.Table], enriched, dlq Writer, retryMax time.Duration, logger *zap.Logger, reg prometheus.Registerer) *Pipeline {
	f := promauto.With(reg)
	m := metrics{
		events:     f.NewCounterVec(prometheus.CounterOpts{Name: "events_total", Help: "Raw events handled by outcome: enriched, unknown_sensor (to the DLQ), decode_failed (to the DLQ)."}, []string{"outcome"}),
		unknownTAC: f.NewCounter(prometheus.CounterOpts{Name: "unknown_tac_total", Help: "Enriched events whose TAC is not in the reference (model marked unknown)."}),
		unknownOp:  f.NewCounter(prometheus.CounterOpts{Name: "unknown_operator_total", Help: "Enriched events whose MCC/MNC is not in the reference (operator marked unknown)."}),
		enrich:     f.NewHistogram(prometheus.HistogramOpts{Name: "enrich_batch_seconds", Help: "Time to enrich one batch (no I/O).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)}),
		produce:    f.NewHistogramVec(prometheus.HistogramOpts{Name: "produce_seconds", Help: "Time until Kafka acknowledged a batch, by topic.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"topic"}),
		retries:    f.NewCounterVec(prometheus.CounterOpts{Name: "produce_retries_total", Help: "Produce attempts retried, by topic."}, []string{"topic"}),
		giveUps:    f.NewCounterVec(prometheus.CounterOpts{Name: "produce_giveups_total", Help: "Batches whose produce failed past the retry budget (the consumer stops without committing), by topic."}, []string{"topic"}),
	}
	for _, o := range []string{LabelEnriched, LabelUnknownSensor, LabelDecodeFailed} {
		m.events.WithLabelValues(o)
	}
	return &Pipeline{tables: tables, enriched: enriched, dlq: dlq, logger: logger.Named("pipeline"), metrics: m, retryMax: retryMax, now: time.Now}
}

// Handle is the consumer's handler: enrich, produce, wait for the acknowledgements.
func (p *Pipeline) Handle(ctx context.Context, msgs []kafka.Message) error {
	start := time.Now()
	// One table for the whole batch: a reload swaps the pointer for the next batch.
	table := p.tables.Load()
	now := event.NewTime(p.now())
	headers := []kafkago.Header{{Key: "ref_version", Value: []byte(table.Snapshot().Version())}}
	out := make([]kafkago.Message, 0, len(msgs))
	var dead []kafkago.Message
	var enriched, unknownSensor, undecodable, unknownTAC, unknownOp int
	for i := range msgs {
		m := &msgs[i]
		res := enrich.Enrich(table, m.Value, event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, now)
		msg := kafkago.Message{Key: res.Key, Value: res.Value, Headers: headers}
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

	if err := p.produce(ctx, p.enriched, "enriched", out); err != nil {
		return err
	}
	if err := p.produce(ctx, p.dlq, "dlq", dead); err != nil {
		return err
	}
	p.metrics.events.WithLabelValues(LabelEnriched).Add(float64(enriched))
	p.metrics.events.WithLabelValues(LabelUnknownSensor).Add(float64(unknownSensor))
	p.metrics.events.WithLabelValues(LabelDecodeFailed).Add(float64(undecodable))
	p.metrics.unknownTAC.Add(float64(unknownTAC))
	p.metrics.unknownOp.Add(float64(unknownOp))
	return nil
}

// produce writes msgs and retries what failed, with exponential backoff and jitter, for at
// most retryMax. A partition's messages of one batch travel in one produce request (the
// producer's batch size is at least the consumer's), so they succeed or fail together and
// retrying the failed ones keeps each key's order.
func (p *Pipeline) produce(ctx context.Context, w Writer, topic string, msgs []kafkago.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	pending := msgs
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		if attempt > 1 {
			p.metrics.retries.WithLabelValues(topic).Inc()
		}
		err := w.WriteMessages(ctx, pending...)
		if err == nil {
			return struct{}{}, nil
		}
		var werrs kafkago.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			failed := make([]kafkago.Message, 0, werrs.Count())
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, pending[i])
				}
			}
			pending = failed
		}
		p.logger.Warn("produce failed, retrying", zap.String("topic", topic), zap.Int("messages", len(pending)), zap.Int("attempt", attempt), zap.Error(err))
		return struct{}{}, err
	}, backoff.WithBackOff(newBackOff()), backoff.WithMaxElapsedTime(p.retryMax))
	if err != nil {
		p.metrics.giveUps.WithLabelValues(topic).Inc()
		return fmt.Errorf("produce %d messages to %s after %d attempts: %w", len(pending), topic, attempt, err)
	}
	p.metrics.produce.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	return nil
}

func newBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.RandomizationFactor = 0.5
	return b
}
