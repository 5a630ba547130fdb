package sink

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/chmigrate"
)

// TestClusterTargets: on a cluster the sink inserts through the Distributed detections
// synchronously, and checks identities on every replica's detections_local (the
// local server cannot run a Distributed insert or clusterAllReplicas: see
// docs/clickhouse-cluster.md; pkg/chmigrate's tests run the cluster schema's DDL).
func TestClusterTargets(t *testing.T) {
	single, err := New(nil, "vigie", 0)
	require.NoError(t, err)
	require.Contains(t, single.insert, "INSERT INTO `vigie`.detections (")
	require.Equal(t, "`vigie`.detections", single.existingFrom)
	require.NotContains(t, single.settings, "distributed_foreground_insert")
	require.Nil(t, single.read)

	c, err := NewCluster(nil, "vigie", "vigie", 0)
	require.NoError(t, err)
	require.Equal(t, single.insert, c.insert, "the Distributed table has the data table's name")
	require.Equal(t, "clusterAllReplicas('vigie', `vigie`.detections_local)", c.existingFrom)
	require.Equal(t, 1, c.settings["distributed_foreground_insert"])
	require.Equal(t, 1, c.settings["deduplicate_blocks_in_dependent_materialized_views"])
	require.Equal(t, 0, c.read["skip_unavailable_shards"])

	_, err = NewCluster(nil, "vigie", "x') --", 0)
	require.ErrorIs(t, err, chmigrate.ErrBadClusterName)
}
