package kafka

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// consumerMetrics are the consumer metrics of one registry, shared by every consumer
// registered on it (one series per group and topic, and partition for the lag).
type consumerMetrics struct {
	lag         *prometheus.GaugeVec
	messages    *prometheus.CounterVec
	handle      *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	commit      *prometheus.HistogramVec
	generations *prometheus.CounterVec
	restarts    *prometheus.CounterVec
}

// groupMetrics are one consumer's series.
type groupMetrics struct {
	lag         *prometheus.GaugeVec // by partition
	messages    prometheus.Counter
	handle      prometheus.Observer
	retries     prometheus.Counter
	commit      prometheus.Observer
	generations prometheus.Counter
	restarts    prometheus.Counter
}

// newConsumerMetrics registers the consumer metrics on reg, or reuses those a consumer
// registered there before.
func newConsumerMetrics(reg prometheus.Registerer) (*consumerMetrics, error) {
	gt := []string{"group", "topic"}
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigie_kafka_consumer_lag_messages",
			Help: "Messages of the partition not yet handled by this member: end offset minus the next offset to handle.",
		}, []string{"group", "topic", "partition"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigie_kafka_consumer_messages_total",
			Help: "Messages handled and committed.",
		}, gt),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigie_kafka_consumer_handle_seconds",
			Help:    "Time the handler took per batch that it handled.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, gt),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigie_kafka_consumer_retries_total",
			Help: "Failed handler, assign, fetch and commit attempts that were retried.",
		}, gt),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigie_kafka_consumer_commit_seconds",
			Help:    "Time to commit a batch's offset.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}, gt),
		generations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigie_kafka_consumer_generations_total",
			Help: "Consumer group generations this member joined (one per rebalance).",
		}, gt),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigie_kafka_consumer_offset_beyond_end_total",
			Help: "Partitions read from their first offset because the start offset lay beyond their end (the topic was recreated).",
		}, gt),
	}
	var err error
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.messages, err = register(reg, m.messages); err != nil {
		return nil, err
	}
	if m.handle, err = register(reg, m.handle); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.commit, err = register(reg, m.commit); err != nil {
		return nil, err
	}
	if m.generations, err = register(reg, m.generations); err != nil {
		return nil, err
	}
	if m.restarts, err = register(reg, m.restarts); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector of the same description that is
// registered there already. reg may be nil.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register consumer metrics: %w", err)
}

// curry returns the series of one group and topic.
func (m *consumerMetrics) curry(group, topic string) *groupMetrics {
	l := prometheus.Labels{"group": group, "topic": topic}
	return &groupMetrics{
		lag:         m.lag.MustCurryWith(l),
		messages:    m.messages.With(l),
		handle:      m.handle.With(l),
		retries:     m.retries.With(l),
		commit:      m.commit.With(l),
		generations: m.generations.With(l),
		restarts:    m.restarts.With(l),
	}
}
