package kafka_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	topicspec "github.com/vigie/vigie/schemas/kafka"
)

func TestLoadTopicSpecsEmbedded(t *testing.T) {
	specs, err := kafka.LoadTopicSpecs(topicspec.Spec)
	require.NoError(t, err)
	got := map[string]kafka.TopicSpec{}
	for _, s := range specs {
		got[s.Name] = s
	}
	week, month := "604800000", "2592000000"
	for name, want := range map[string]struct {
		partitions int
		retention  string
	}{
		"detections.raw.v1":      {6, week},
		"detections.enriched.v1": {6, week},
		"detections.dlq.v1":      {6, month},
		"alerts.v1":              {3, month},
	} {
		s, ok := got[name]
		require.True(t, ok, name)
		require.Equal(t, want.partitions, s.Partitions, name)
		require.Zero(t, s.ReplicationFactor, "%s: min(3, brokers)", name)
		require.Equal(t, want.retention, s.Config["retention.ms"], name)
		require.Equal(t, "delete", s.Config["cleanup.policy"], name)
		require.Equal(t, "producer", s.Config["compression.type"], name)
		require.Equal(t, "CreateTime", s.Config["message.timestamp.type"], name)
		require.NotContains(t, s.Config, "min.insync.replicas", "%s: computed from the factor", name)
	}
	require.Len(t, specs, 4)
}

func TestLoadTopicSpecsRejects(t *testing.T) {
	const head = "topics:\n  - name: t.one\n"
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the error
	}{
		{"top-level key", "topic:\n  - name: a\n", []string{"line 1", `unknown key "topic"`}},
		{"empty list", "topics: []\n", []string{"non-empty"}},
		{"unknown topic key", head + "    partitions: 1\n    replicas: 3\n", []string{"topic t.one", `unknown key "replicas"`, "line 4"}},
		{"partitions not a number", head + "    partitions: six\n", []string{"topic t.one", "partitions", `"six" is not an integer`}},
		{"partitions zero", head + "    partitions: 0\n", []string{"topic t.one", "partitions: must be positive"}},
		{"negative factor", head + "    partitions: 1\n    replication_factor: -1\n", []string{"topic t.one", "replication_factor"}},
		{"unknown setting", head + "    partitions: 1\n    config: {retention.msec: \"1\"}\n", []string{"topic t.one", "config.retention.msec", "not a Kafka topic setting"}},
		{"bad retention", head + "    partitions: 1\n    config: {retention.ms: 7d}\n", []string{"topic t.one", "config.retention.ms", `"7d" is not an integer`}},
		{"bad policy", head + "    partitions: 1\n    config: {cleanup.policy: purge}\n", []string{"topic t.one", "config.cleanup.policy", "purge"}},
		{"bad timestamp type", head + "    partitions: 1\n    config: {message.timestamp.type: BrokerTime}\n", []string{"config.message.timestamp.type"}},
		{"min isr above factor", head + "    partitions: 1\n    replication_factor: 1\n    config: {min.insync.replicas: \"2\"}\n", []string{"topic t.one", "min.insync.replicas", "replication_factor 1"}},
		{"no name", "topics:\n  - partitions: 1\n", []string{"line 2", "name is required"}},
		{"bad name", "topics:\n  - name: a/b\n    partitions: 1\n", []string{"a/b", "not a valid topic name"}},
		{"duplicate", head + "    partitions: 1\n  - name: t.one\n    partitions: 2\n", []string{"topic t.one already declared on line 2"}},
		{"not yaml", "topics: [\n", []string{"topic spec"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kafka.LoadTopicSpecs([]byte(tc.doc))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// clusterConfig returns the three-broker cluster, starting it when it is not running
// (kafka.sh start is idempotent and serialised by a lock; `make down` stops it).
func clusterConfig(t *testing.T) kafka.Config {
	t.Helper()
	startCluster.Do(func() {
		root, err := testenv.RepoRoot()
		require.NoError(t, err)
		out, err := exec.Command(filepath.Join(root, "deploy/local/kafka.sh"), "start", "cluster").CombinedOutput()
		require.NoError(t, err, "start the three-broker cluster: %s", out)
	})
	return kafka.Config{Brokers: strings.Split(testenv.Lookup(t, "KAFKA_CLUSTER_BROKERS"), ",")}
}

var startCluster sync.Once

func singleConfig(t *testing.T) kafka.Config {
	return kafka.Config{Brokers: testenv.KafkaBrokers(t)}
}

// describe returns the topic's partitions, replication factor and the settings named.
func describe(t *testing.T, conn kafka.Config, topic string, keys ...string) (partitions, rf int, settings map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A transport of its own: kafka-go answers metadata from a transport's cache.
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Transport: tr}
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	require.NoError(t, err)
	require.Len(t, meta.Topics, 1)
	require.NoError(t, meta.Topics[0].Error)
	for _, p := range meta.Topics[0].Partitions {
		rf = max(rf, len(p.Replicas))
	}
	resp, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: keys,
	}}})
	require.NoError(t, err)
	settings = map[string]string{}
	for _, r := range resp.Resources {
		require.NoError(t, r.Error)
		for _, e := range r.ConfigEntries {
			settings[e.ConfigName] = e.ConfigValue
		}
	}
	return len(meta.Topics[0].Partitions), rf, settings
}

func whats(changes []kafka.TopicChange) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		out = append(out, c.Topic+" "+c.What)
	}
	return out
}

func TestApplyTopicsSpecOnSingleBroker(t *testing.T) {
	ctx := context.Background()
	conn := singleConfig(t)
	logger := zaptest.NewLogger(t)
	specs, err := kafka.LoadTopicSpecs(topicspec.Spec)
	require.NoError(t, err)
	suffix := "." + testenv.Name(t, "sfx")
	specs = kafka.WithSuffix(specs, suffix)

	// A dry run reports the creations and creates nothing.
	planned, err := kafka.ApplyTopics(ctx, conn, specs, logger, kafka.DryRun())
	require.NoError(t, err)
	require.Len(t, planned, 4)
	for _, c := range planned {
		require.Equal(t, kafka.ChangeCreate, c.What)
		require.True(t, strings.HasSuffix(c.Topic, suffix), c.Topic)
		require.False(t, c.Applied)
		require.Contains(t, c.To, "replication_factor=1")
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = kafka.PartitionOffsets(short, conn, "alerts.v1"+suffix)
	cancel()
	require.ErrorContains(t, err, "not found", "a dry run creates nothing")

	changes, err := kafka.ApplyTopics(ctx, conn, specs, logger)
	require.NoError(t, err)
	require.Len(t, changes, 4, "%v", changes)
	for _, c := range changes {
		require.Equal(t, kafka.ChangeCreate, c.What)
		require.True(t, c.Applied)
	}
	parts, rf, cfg := describe(t, conn, "detections.raw.v1"+suffix, "min.insync.replicas", "retention.ms", "cleanup.policy", "compression.type", "message.timestamp.type")
	require.Equal(t, 6, parts)
	require.Equal(t, 1, rf, "min(3, 1 broker)")
	require.Equal(t, map[string]string{
		"min.insync.replicas": "1", "retention.ms": "604800000", "cleanup.policy": "delete",
		"compression.type": "producer", "message.timestamp.type": "CreateTime",
	}, cfg)
	offsets, err := kafka.PartitionOffsets(ctx, conn, "alerts.v1"+suffix)
	require.NoError(t, err)
	require.Len(t, offsets, 3, "every partition has a leader once ApplyTopics returns")

	again, err := kafka.ApplyTopics(ctx, conn, specs, logger)
	require.NoError(t, err)
	require.Empty(t, again, "second apply changes nothing")
}

func TestApplyTopicsFixesAndReportsDrift(t *testing.T) {
	ctx := context.Background()
	conn := singleConfig(t)
	logger := zaptest.NewLogger(t)
	name := testenv.Name(t, "topic")
	base := kafka.TopicSpec{Name: name, Partitions: 2, Config: map[string]string{"retention.ms": "3600000"}}
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{base}, logger)
	require.NoError(t, err)

	// More partitions and another retention: both fixed, reported as applied.
	grown := base
	grown.Partitions = 4
	grown.Config = map[string]string{"retention.ms": "7200000"}
	planned, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{grown}, logger, kafka.DryRun())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{name + " partitions", name + " config retention.ms"}, whats(planned))
	parts, _, cfg := describe(t, conn, name, "retention.ms")
	require.Equal(t, 2, parts, "dry run")
	require.Equal(t, "3600000", cfg["retention.ms"], "dry run")

	changes, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{grown}, logger)
	require.NoError(t, err)
	require.ElementsMatch(t, []kafka.TopicChange{
		{Topic: name, What: kafka.ChangePartitions, From: "2", To: "4", Applied: true},
		{Topic: name, What: kafka.ChangeConfigPrefix + "retention.ms", From: "3600000", To: "7200000", Applied: true},
	}, changes)
	parts, _, cfg = describe(t, conn, name, "retention.ms")
	require.Equal(t, 4, parts)
	require.Equal(t, "7200000", cfg["retention.ms"])
	offsets, err := kafka.PartitionOffsets(ctx, conn, name)
	require.NoError(t, err)
	require.Len(t, offsets, 4)

	// Fewer partitions than the topic has: drift, left alone, reported every time.
	for range 2 {
		drift, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{base}, logger)
		require.NoError(t, err)
		require.Contains(t, drift, kafka.TopicChange{Topic: name, What: kafka.DriftPartitions, From: "4", To: "2"})
		for _, c := range drift {
			if c.What == kafka.DriftPartitions {
				require.True(t, c.Drift())
				require.Contains(t, c.String(), "not fixable")
			}
		}
		base.Config = grown.Config // the retention was set back once; the drift stays
	}

	// A factor the single broker cannot give is an error naming the topic, and nothing changes.
	_, err = kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: name + "_rf", Partitions: 1, ReplicationFactor: 3}}, logger)
	require.ErrorContains(t, err, name+"_rf")
	require.ErrorContains(t, err, "the cluster has 1")
}

func TestApplyTopicsOnThreeBrokers(t *testing.T) {
	ctx := context.Background()
	conn := clusterConfig(t)
	logger := zaptest.NewLogger(t)
	name := testenv.Name(t, "topic")
	specs := []kafka.TopicSpec{{Name: name, Partitions: 3, Config: map[string]string{"retention.ms": "3600000"}}}

	changes, err := kafka.ApplyTopics(ctx, conn, specs, logger)
	require.NoError(t, err)
	require.Len(t, changes, 1)
	require.Contains(t, changes[0].To, "replication_factor=3")
	require.Contains(t, changes[0].To, "min.insync.replicas=2")
	parts, rf, cfg := describe(t, conn, name, "min.insync.replicas")
	require.Equal(t, 3, parts)
	require.Equal(t, 3, rf, "min(3, 3 brokers)")
	require.Equal(t, "2", cfg["min.insync.replicas"])

	again, err := kafka.ApplyTopics(ctx, conn, specs, logger)
	require.NoError(t, err)
	require.Empty(t, again)

	// A topic made by hand with factor 1 is drift the spec cannot fix in place; its
	// min.insync.replicas (the cluster default of 2 would stop every producer) is fixed to 1.
	manual := name + "_rf1"
	cl := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...)}
	resp, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: manual, NumPartitions: 1, ReplicationFactor: 1}}})
	require.NoError(t, err)
	require.NoError(t, resp.Errors[manual])
	require.NoError(t, kafka.WaitForTopic(ctx, conn, manual, logger))
	drift, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: manual, Partitions: 1}}, logger)
	require.NoError(t, err)
	require.ElementsMatch(t, []kafka.TopicChange{
		{Topic: manual, What: kafka.DriftReplicationFactor, From: "1", To: "3"},
		{Topic: manual, What: kafka.ChangeConfigPrefix + "min.insync.replicas", From: "2", To: "1", Applied: true},
	}, drift)
}
