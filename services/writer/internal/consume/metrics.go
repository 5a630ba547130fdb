package consume

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the writer's own; reg prefixes them with vigie_writer_. Lag, batches handled,
// handler retries and rebalances are the shared consumer's (vigie_kafka_consumer_*).
type metrics struct {
	rows          prometheus.Counter
	batches       *prometheus.CounterVec
	insertSeconds prometheus.Histogram
	batchRows     prometheus.Histogram
	retries       prometheus.Counter
	dlq           *prometheus.CounterVec
	pending       prometheus.Gauge
	duplicates    *prometheus.CounterVec
	checkSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		rows: f.NewCounter(prometheus.CounterOpts{Name: "rows_written_total",
			Help: "Rows inserted into detections (each event once: duplicates and retries not counted)."}),
		batches: f.NewCounterVec(prometheus.CounterOpts{Name: "batches_total",
			Help: "Blocks inserted into detections by result: ok, split (rejected, then split), failed (left to the consumer's retry)."}, []string{"result"}),
		insertSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "insert_seconds",
			Help: "Latency of one successful insert into detections, retries included.", ConstLabels: prometheus.Labels{"table": "detections"},
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		batchRows: f.NewHistogram(prometheus.HistogramOpts{Name: "batch_rows",
			Help: "Rows per insert (blocks of several partitions merged).", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "retries_total",
			Help: "Inserts retried with the same rows and token after a retryable error."}),
		dlq: f.NewCounterVec(prometheus.CounterOpts{Name: "dlq_total",
			Help: "Messages sent to the dead-letter topic, by reason."}, []string{"reason"}),
		pending: f.NewGauge(prometheus.GaugeOpts{Name: "pending_rows",
			Help: "Messages of batches being decoded or inserted (max_pending_rows bounds it)."}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{Name: "duplicates_total",
			Help: "Events not inserted because their identity (sensor_id, event_id) was already in the batch (where=batch) or in detections (where=stored)."}, []string{"where"}),
		checkSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "identity_check_seconds",
			Help: "Latency of one batch's identity check against detections.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
}
