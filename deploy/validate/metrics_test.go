package validate

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv/codemetrics"
)

// definedMetrics reads the metrics the Go code registers, by their full names (package
// pkg/testenv/codemetrics says what counts, for the dashboards' and the rules' tests too).
func definedMetrics(t *testing.T) map[string]codemetrics.Metric {
	t.Helper()
	defined, err := codemetrics.Defined(path(t))
	require.NoError(t, err)
	return defined
}

// lookupMetric finds name, or the histogram name that name+_bucket/_sum/_count stands for.
func lookupMetric(defined map[string]codemetrics.Metric, name string) (codemetrics.Metric, bool) {
	return codemetrics.Lookup(defined, name)
}

func TestDefinedMetricsFound(t *testing.T) {
	d := definedMetrics(t)
	for _, name := range []string{"vigie_kafka_consumer_lag_messages", "vigie_build_info", "vigie_writer_rows_written_total", "vigie_ingest_reloads_total"} {
		_, ok := d[name]
		require.True(t, ok, "%s not found in the Go code: the metric reader is broken", name)
	}
	require.True(t, d["vigie_kafka_consumer_lag_messages"].Labels["partition"])
}
