package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/config"
)

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	require.False(t, cfg.ClickHouseEnabled(), "no ClickHouse unless clickhouse.addrs is set")
	require.Equal(t, "vigie-enricher", cfg.Consumer.GroupID)
	require.Equal(t, 2000, cfg.Consumer.BatchSize)
	require.Equal(t, 50*time.Millisecond, cfg.Consumer.BatchWait)
	require.Equal(t, cfg.Consumer.BatchSize, cfg.Producer.BatchSize)
	require.Equal(t, "all", cfg.Producer.Acks)
	require.Equal(t, "127.0.0.1:19103", cfg.Admin.Listen)
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"admin", func(c *Config) { c.Admin.Listen = "" }, "admin.listen"},
		{"brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers"},
		{"group", func(c *Config) { c.Consumer.GroupID = "" }, "consumer.group_id"},
		{"batch too big", func(c *Config) { c.Consumer.BatchSize = 50000; c.Producer.BatchSize = 50000 }, "consumer.batch_size"},
		{"producer batch", func(c *Config) { c.Producer.BatchSize = 100 }, "producer.batch_size"},
		{"acks", func(c *Config) { c.Producer.Acks = "some" }, "producer.acks"},
		{"topic empty", func(c *Config) { c.Topics.DLQ = "" }, "topics.dlq"},
		{"topics same", func(c *Config) { c.Topics.Enriched = c.Topics.Raw }, "must differ"},
		{"debounce", func(c *Config) { c.Reference.Debounce = 0 }, "reference.debounce"},
		{"clickhouse", func(c *Config) { c.ClickHouse.Addrs = []string{"127.0.0.1:19000"}; c.ClickHouse.Database = "" }, "clickhouse.database"},
		{"clickhouse cluster", func(c *Config) { c.ClickHouse.Addrs = []string{"127.0.0.1:19000"}; c.ClickHouse.Cluster = "a'b" }, "clickhouse.cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(cfg)
			require.ErrorContains(t, cfg.Validate(), tc.want)
		})
	}
}

// TestConfigKeys loads the shared key names from the environment and a YAML file, and
// refuses the keys the enricher had before the skeleton.
func TestConfigKeys(t *testing.T) {
	t.Setenv(EnvPrefix+"_TOPICS_RAW", "raw.test")
	t.Setenv(EnvPrefix+"_CONSUMER_GROUP_ID", "g")
	t.Setenv(EnvPrefix+"_CLICKHOUSE_ADDRS", "127.0.0.1:19000")
	t.Setenv(EnvPrefix+"_CLICKHOUSE_CLUSTER", "vigie")
	t.Setenv(EnvPrefix+"_ADMIN_LISTEN", "127.0.0.1:0")
	path := filepath.Join(t.TempDir(), "enricher.yaml")
	require.NoError(t, os.WriteFile(path, []byte("reference: {dir: /ref, debounce: 1s}\nproducer: {compression: none}\n"), 0o600))
	cfg := DefaultConfig()
	require.NoError(t, config.Load(cfg, EnvPrefix, []string{"-config", path, "-consumer.batch_size=100"}))
	require.Equal(t, "raw.test", cfg.Topics.Raw)
	require.Equal(t, "g", cfg.Consumer.GroupID)
	require.Equal(t, 100, cfg.Consumer.BatchSize)
	require.True(t, cfg.ClickHouseEnabled())
	require.Equal(t, "vigie", cfg.ClickHouse.Cluster)
	require.Equal(t, "/ref", cfg.Reference.Dir)
	require.Equal(t, time.Second, cfg.Reference.Debounce)
	require.Equal(t, "none", cfg.Producer.Compression)

	for _, old := range []string{"kafka: {partitions: 6}", "kafka: {raw_topic: x}", "admin_addr: x", "kafka: {produce_retry: 1m}"} {
		require.NoError(t, os.WriteFile(path, []byte(old+"\n"), 0o600))
		require.Error(t, config.Load(DefaultConfig(), EnvPrefix, []string{"-config", path}), old)
	}
}
