package codemetrics_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/pkg/testenv/codemetrics"
)

// TestDefinedFindsTheKindsOfMetric: a library's full name with its variable labels, a
// service's prefixed name, pkg/service's computed vigie_<service>_reloads_total, constant
// labels, and a histogram's _bucket.
func TestDefinedFindsTheKindsOfMetric(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	d, err := codemetrics.Defined(root)
	require.NoError(t, err)
	for name, labels := range map[string][]string{
		"vigie_kafka_consumer_lag_messages": {"group", "topic", "partition"},
		"vigie_ready":                       nil,
		"vigie_check_ok":                    {"check"},
		"vigie_build_info":                  {"version", "revision", "go_version"},
		"vigie_writer_rows_written_total":   nil,
		"vigie_writer_batches_total":        {"result"},
		"vigie_ingest_reloads_total":        {"hook", "result"},
		"vigie_correlator_reloads_total":    {"hook", "result"},
	} {
		m, ok := d[name]
		require.True(t, ok, "%s not found; found: %v", name, codemetrics.Names(d))
		for _, l := range labels {
			require.True(t, m.Labels[l], "%s has label %s (%s)", name, l, m.Where)
		}
	}
	_, ok := codemetrics.Lookup(d, "vigie_kafka_consumer_handle_seconds_bucket")
	require.True(t, ok)
	_, ok = codemetrics.Lookup(d, "vigie_writer_no_such_thing_total")
	require.False(t, ok)
}
