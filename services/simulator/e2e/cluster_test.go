package e2e

// The three-broker cluster of the fault tests: its nodes killed and started again with
// kafka.sh, the leader of a partition found from metadata.

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
)

// cluster returns the three-broker cluster, started when it is not running. The fault tests
// kill its nodes and restart them before they end.
func cluster(t *testing.T) []string {
	t.Helper()
	require.NoError(t, kafkaSh(nil, "start", "cluster"))
	return strings.Split(testenv.Lookup(t, "KAFKA_CLUSTER_BROKERS"), ",")
}

// clusterNode is the kafka.sh node number of a cluster broker address (ports 19192, 19292,
// 19392 are nodes 1, 2, 3).
func clusterNode(t *testing.T, brokers []string, host string, port int) int {
	t.Helper()
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for i, b := range brokers {
		if b == addr {
			return i + 1
		}
	}
	t.Fatalf("leader %s is not one of the cluster's brokers %v", addr, brokers)
	return 0
}

// leaderOf returns the cluster node leading partition part of topic, read from metadata.
func leaderOf(ctx context.Context, t *testing.T, brokers []string, topic string, part int) int {
	t.Helper()
	tr := &kafkago.Transport{} // its own: a transport caches metadata
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	var node int
	require.Eventually(t, func() bool {
		meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
			return false
		}
		for _, p := range meta.Topics[0].Partitions {
			if p.ID == part && p.Error == nil && p.Leader.Port > 0 {
				node = clusterNode(t, brokers, p.Leader.Host, p.Leader.Port)
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no leader for %s/%d", topic, part)
	return node
}

// killNode SIGKILLs a cluster node; cleanup starts it again if the test has not.
func killNode(t *testing.T, node int) {
	t.Helper()
	n := strconv.Itoa(node)
	require.NoError(t, kafkaSh(nil, "kill-node", n))
	t.Cleanup(func() {
		if err := kafkaSh(nil, "start-node", n); err != nil {
			t.Errorf("restart cluster node %d: %v", node, err)
		}
	})
}

// startNode starts a cluster node again (idempotent).
func startNode(t *testing.T, node int) {
	t.Helper()
	require.NoError(t, kafkaSh(nil, "start-node", strconv.Itoa(node)))
}
