package consume

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	rows          prometheus.Counter
	batches       *prometheus.CounterVec
	insertSeconds prometheus.Histogram
	batchRows     prometheus.Histogram
	retries       prometheus.Counter
	giveUps       prometheus.Counter
	dlq           *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	pending       prometheus.Gauge
	resumed       prometheus.Counter
	generations   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		rows: f.NewCounter(prometheus.CounterOpts{Name: "vigie_writer_rows_written_total",
			Help: "Rows inserted into detections (each Kafka message once, retries not counted twice)."}),
		batches: f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_writer_batches_total",
			Help: "Inserts into detections by result: ok, split (rejected, then split), failed."}, []string{"result"}),
		insertSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "vigie_writer_insert_seconds",
			Help: "Latency of one successful insert into detections, retries included.", ConstLabels: prometheus.Labels{"table": "detections"},
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		batchRows: f.NewHistogram(prometheus.HistogramOpts{Name: "vigie_writer_batch_rows",
			Help: "Rows per insert.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "vigie_writer_retries_total",
			Help: "Insert or dead-letter attempts retried after a retryable error."}),
		giveUps: f.NewCounter(prometheus.CounterOpts{Name: "vigie_writer_retry_giveups_total",
			Help: "Operations abandoned when the retry budget ran out (the writer then stops)."}),
		dlq: f.NewCounterVec(prometheus.CounterOpts{Name: "vigie_writer_dlq_total",
			Help: "Messages sent to the dead-letter topic, by reason."}, []string{"reason"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigie_writer_lag_messages",
			Help: "Messages in a partition after the last one fetched."}, []string{"partition"}),
		pending: f.NewGauge(prometheus.GaugeOpts{Name: "vigie_writer_pending_rows",
			Help: "Rows decoded and held in memory, not yet written."}),
		resumed: f.NewCounter(prometheus.CounterOpts{Name: "vigie_writer_resumed_from_clickhouse_total",
			Help: "Partition assignments that resumed after ClickHouse's offset, ahead of the committed one."}),
		generations: f.NewCounter(prometheus.CounterOpts{Name: "vigie_writer_generations_total",
			Help: "Consumer group generations joined (rebalances)."}),
	}
}
