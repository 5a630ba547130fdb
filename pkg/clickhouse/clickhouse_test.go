package clickhouse_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/testenv"
)

func TestOpenAndQuery(t *testing.T) {
	for _, compression := range []string{"none", "lz4", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			cfg := clickhouse.DefaultConfig()
			cfg.Addrs = []string{testenv.ClickHouseAddr(t)}
			cfg.Compression = compression
			require.NoError(t, cfg.Validate("clickhouse"))
			// Bounded: the local server runs one statement at a time, and a hung one blocks every test.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := clickhouse.Open(ctx, cfg, zap.NewNop())
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, clickhouse.Ping(conn)(ctx))
			var n uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM numbers(1000)").Scan(&n))
			require.Equal(t, uint64(1000), n)
		})
	}
}

func TestOpenWithTheServerDownIsNotAnError(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := clickhouse.DefaultConfig()
	cfg.Addrs = []string{"127.0.0.1:1"} // nothing listens on port 1
	cfg.DialTimeout = 500 * time.Millisecond
	conn, err := clickhouse.Open(context.Background(), cfg, zap.New(core))
	require.NoError(t, err, "a server that is down is transient (CONVENTIONS 16)")
	require.NotNil(t, conn)
	defer conn.Close()
	require.Equal(t, 1, logs.FilterMessageSnippet("not reachable").Len())
	require.ErrorContains(t, clickhouse.Ping(conn)(context.Background()), "ping clickhouse")
}

func TestOpenRefusesABadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open-password")
	require.NoError(t, os.WriteFile(open, []byte("secret\n"), 0o600))
	require.NoError(t, os.Chmod(open, 0o644))
	for _, path := range []string{open, filepath.Join(dir, "missing")} {
		cfg := clickhouse.DefaultConfig()
		cfg.Addrs = []string{"127.0.0.1:1"}
		cfg.PasswordFile = path
		conn, err := clickhouse.Open(context.Background(), cfg, nil)
		require.ErrorContains(t, err, "clickhouse password_file")
		require.ErrorContains(t, err, path)
		require.Nil(t, conn)
	}
	_, err := clickhouse.Open(context.Background(), func() clickhouse.Config {
		c := clickhouse.DefaultConfig()
		c.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem")}
		return c
	}(), nil)
	require.ErrorContains(t, err, filepath.Join(dir, "ca.pem"))
}

func TestDefaultConfigReadsTheEnvironment(t *testing.T) {
	t.Setenv("CLICKHOUSE_USER", "")
	t.Setenv("CLICKHOUSE_PASSWORD", "ignored without a user")
	cfg := clickhouse.DefaultConfig()
	require.Equal(t, []string{"default", ""}, []string{cfg.Username, cfg.Password}, "the old local server's user")
	t.Setenv("CLICKHOUSE_USER", "admin")
	t.Setenv("CLICKHOUSE_PASSWORD", "s3cret")
	cfg = clickhouse.DefaultConfig()
	require.Equal(t, []string{"admin", "s3cret"}, []string{cfg.Username, cfg.Password})
}

func TestPasswordFileWins(t *testing.T) {
	t.Setenv("CLICKHOUSE_USER", "")
	path := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(path, []byte("from-file\n"), 0o600))
	cfg := clickhouse.DefaultConfig()
	cfg.Password, cfg.PasswordFile = "inline", path
	opts, err := cfg.Options()
	require.NoError(t, err)
	require.Equal(t, "from-file", opts.Auth.Password)
	require.Equal(t, "default", opts.Auth.Username)
	require.Empty(t, opts.Auth.Database, "the session starts in default: the database may not exist yet")
	require.Nil(t, opts.TLS)
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*clickhouse.Config)
		wantErr string
	}{
		{name: "defaults", change: func(*clickhouse.Config) {}},
		{name: "no addrs", change: func(c *clickhouse.Config) { c.Addrs = nil }, wantErr: "clickhouse.addrs: must not be empty"},
		{name: "addr without port", change: func(c *clickhouse.Config) { c.Addrs = []string{"localhost"} }, wantErr: "clickhouse.addrs: address localhost: missing port"},
		{name: "database", change: func(c *clickhouse.Config) { c.Database = "vigie; DROP" }, wantErr: "clickhouse.database"},
		{name: "dial timeout", change: func(c *clickhouse.Config) { c.DialTimeout = 0 }, wantErr: "clickhouse.dial_timeout"},
		{name: "query timeout", change: func(c *clickhouse.Config) { c.QueryTimeout = -time.Second }, wantErr: "clickhouse.query_timeout"},
		{name: "max open conns", change: func(c *clickhouse.Config) { c.MaxOpenConns = 0 }, wantErr: "clickhouse.max_open_conns"},
		{name: "compression", change: func(c *clickhouse.Config) { c.Compression = "gzip" }, wantErr: `clickhouse.compression: "gzip" is not none, lz4 or zstd`},
		{name: "tls", change: func(c *clickhouse.Config) { c.TLS = config.TLS{Enabled: true, CertFile: "c.pem"} }, wantErr: "clickhouse.tls.cert_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clickhouse.DefaultConfig()
			tt.change(&c)
			err := c.Validate("clickhouse")
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
