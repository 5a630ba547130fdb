package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	pkgconfig "github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/services/writer/internal/config"
)

func TestDefaultIsValid(t *testing.T) {
	require.NoError(t, config.Default().Validate())
}

func TestKeysFromEnvironmentAndFlags(t *testing.T) {
	t.Setenv("VIGIE_WRITER_TOPICS_ENRICHED", "enriched.test")
	t.Setenv("VIGIE_WRITER_CLICKHOUSE_ADDRS", "10.0.0.1:9000,10.0.0.2:9000")
	t.Setenv("VIGIE_WRITER_CONSUMER_GROUP_ID", "g")
	t.Setenv("VIGIE_WRITER_CLICKHOUSE_CLUSTER", "vigie")
	cfg := config.Default()
	require.NoError(t, pkgconfig.Load(cfg, "VIGIE_WRITER", []string{"-admin.listen=127.0.0.1:0", "-max_pending_rows=20000"}))
	require.Equal(t, "enriched.test", cfg.Topics.Enriched)
	require.Equal(t, []string{"10.0.0.1:9000", "10.0.0.2:9000"}, cfg.ClickHouse.Addrs)
	require.Equal(t, "g", cfg.Consumer.GroupID)
	require.Equal(t, "vigie", cfg.ClickHouse.Cluster)
	require.Equal(t, "127.0.0.1:0", cfg.Admin.Listen)
	require.Equal(t, 20000, cfg.MaxPendingRows)
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(*config.Config)
	}{
		{"admin.listen", func(c *config.Config) { c.Admin.Listen = "" }},
		{"kafka.brokers", func(c *config.Config) { c.Kafka.Brokers = nil }},
		{"consumer.batch_size", func(c *config.Config) { c.Consumer.BatchSize = 2_000_000; c.MaxPendingRows = 2_000_000 }},
		{"consumer.rebalance_timeout", func(c *config.Config) { c.Consumer.RebalanceTimeout = c.ClickHouse.QueryTimeout }},
		{"topics.dlq", func(c *config.Config) { c.Topics.DLQ = "" }},
		{"clickhouse.addrs", func(c *config.Config) { c.ClickHouse.Addrs = nil }},
		{"clickhouse.cluster", func(c *config.Config) { c.ClickHouse.Cluster = "a'b" }},
		{"max_pending_rows", func(c *config.Config) { c.MaxPendingRows = c.Consumer.BatchSize - 1 }},
		{"max_concurrent_inserts", func(c *config.Config) { c.MaxConcurrentInserts = 0 }},
		{"memory_limit_mb", func(c *config.Config) { c.MemoryLimitMB = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			c := config.Default()
			tt.mutate(c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.key)
		})
	}
}
