package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/vigiectl/internal/cli"
)

// run runs vigiectl with args and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		code, out, _ := run(t, args...)
		require.Equal(t, cli.ExitOK, code, args)
		require.Regexp(t, `^vigiectl \S+ \(revision \S+, go\S+\)\n$`, out, args)
	}
	code, out, _ := run(t, "help")
	require.Equal(t, cli.ExitOK, code)
	for _, cmd := range []string{"migrate", "topics apply", "rules check", "rules test", "version"} {
		require.Contains(t, out, "vigiectl "+cmd)
	}
	code, _, errOut := run(t)
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errOut, "Usage:")
	code, _, errOut = run(t, "topics", "delete")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errOut, `unknown command "topics delete"`)
	code, _, _ = run(t, "version", "extra")
	require.Equal(t, cli.ExitUsage, code)

	code, out, _ = run(t, "topics", "apply", "-h")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "-dry-run")
	require.Contains(t, out, "-strict")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"topics", "apply", "-kafka.brokers", ""},
		{"topics", "apply", "-kafka.brokers=nohost"},
		{"topics", "apply", "-topics.suffix=a/b"},
		{"topics", "apply", "-no-such-flag"},
		{"topics", "apply", "positional"},
		{"migrate", "-clickhouse.database=bad-name"},
		{"migrate", "-clickhouse.addrs="},
		{"migrate", "-clickhouse.cluster=a b"},
		{"rules", "check"},
		{"rules", "test"},
		{"rules", "test", "rule.yaml", "-clickhouse.addrs="},
		{"rules", "check", "-kafka.brokers=x:1", "rule.yaml"},
	} {
		code, _, errOut := run(t, args...)
		require.Equal(t, cli.ExitUsage, code, "%v: %s", args, errOut)
		require.Contains(t, errOut, "usage: vigiectl", args)
	}
}

func TestMigrateTwice(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	db := testenv.Name(t, "ctl")
	t.Cleanup(func() {
		cfg := clickhouse.DefaultConfig()
		cfg.Addrs = []string{addr}
		conn, err := clickhouse.Open(context.Background(), cfg, nil)
		if err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
			_ = conn.Close()
		}
	})
	args := []string{"migrate", "-clickhouse.addrs", addr, "-clickhouse.database=" + db}
	code, out, errOut := run(t, args...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Regexp(t, `^database `+db+`: [1-9][0-9]* migrations applied \(0001_detections, .*\), 0 already applied\n$`, out)

	code, out, errOut = run(t, args...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Regexp(t, `^database `+db+`: 0 migrations applied, [1-9][0-9]* already applied\n$`, out, "idempotent")

	// The environment carries the same keys.
	t.Setenv("VIGIE_CTL_CLICKHOUSE_ADDRS", addr)
	t.Setenv("VIGIE_CTL_CLICKHOUSE_DATABASE", db)
	code, out, errOut = run(t, "migrate")
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "0 migrations applied")

	// A server that is not there is an error (exit 1), not a usage error.
	code, _, errOut = run(t, "migrate", "-clickhouse.addrs=127.0.0.1:1", "-clickhouse.dial_timeout=300ms", "-clickhouse.database="+db)
	require.Equal(t, cli.ExitError, code, errOut)
	require.Contains(t, errOut, "vigiectl migrate:")
}

// TestMigrateCluster: -clickhouse.cluster selects the cluster variant, which first checks
// that the server is a member of that cluster (the local server is not: it has no
// remote_servers and no macros). pkg/chmigrate tests the variant itself.
func TestMigrateCluster(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	db := testenv.Name(t, "ctl")
	code, out, errOut := run(t, "migrate", "-clickhouse.addrs", addr, "-clickhouse.database="+db, "-clickhouse.cluster", "vigie")
	require.Equal(t, cli.ExitError, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, `cluster "vigie" is not in the server's remote_servers`)

	t.Setenv("VIGIE_CTL_CLICKHOUSE_CLUSTER", "vigie")
	code, _, errOut = run(t, "migrate", "-clickhouse.addrs", addr, "-clickhouse.database="+db)
	require.Equal(t, cli.ExitError, code, errOut)
	require.Contains(t, errOut, `cluster "vigie"`)
}

func TestTopicsApply(t *testing.T) {
	brokers := strings.Join(testenv.KafkaBrokers(t), ",")
	suffix := "." + testenv.Name(t, "ctl")
	base := []string{"topics", "apply", "-kafka.brokers", brokers, "-topics.suffix", suffix}

	code, out, errOut := run(t, append(base, "-dry-run")...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "detections.raw.v1"+suffix)
	require.Equal(t, 4, strings.Count(out, "dry run"), out)

	code, out, errOut = run(t, base...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Regexp(t, `TOPIC\s+CHANGE\s+FROM\s+TO\s+STATUS`, out)
	require.Equal(t, 4, strings.Count(out, "applied"), out)
	for _, topic := range []string{"detections.raw.v1", "detections.enriched.v1", "detections.dlq.v1", "alerts.v1"} {
		require.Regexp(t, topic+suffix+`\s+create\s+-\s+partitions=\d replication_factor=1 `, out)
	}

	code, out, errOut = run(t, base...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Equal(t, "4 topics match the spec\n", out, "second apply changes nothing")

	// A spec that asks fewer partitions than the topics have: drift, exit 0, or 1 with -strict.
	spec := filepath.Join(t.TempDir(), "topics.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("topics:\n  - name: alerts.v1\n    partitions: 1\n"), 0o644))
	code, out, errOut = run(t, append(base, "-spec", spec)...)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Regexp(t, `alerts.v1`+suffix+`\s+drift partitions\s+3\s+1\s+drift: not fixable by apply`, out)
	require.Contains(t, errOut, "-strict")
	code, _, errOut = run(t, append(base, "-spec="+spec, "-strict")...)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "drift")

	// A bad spec names the topic and key.
	require.NoError(t, os.WriteFile(spec, []byte("topics:\n  - name: alerts.v1\n    partitions: three\n"), 0o644))
	code, _, errOut = run(t, append(base, "-spec", spec)...)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "topic alerts.v1: partitions")

	// A broker that is not there: exit 1, nothing printed as if it matched.
	code, out, errOut = run(t, "topics", "apply", "-kafka.brokers=127.0.0.1:1")
	require.Equal(t, cli.ExitError, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "127.0.0.1:1")

	// Environment keys.
	t.Setenv("VIGIE_CTL_KAFKA_BROKERS", brokers)
	t.Setenv("VIGIE_CTL_TOPICS_SUFFIX", suffix)
	code, out, errOut = run(t, "topics", "apply", "-dry-run")
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Equal(t, "4 topics match the spec\n", out)
}

// keys rotate: the key file gains an active version; a missing flag is a usage error, a
// file others can read a failure that names the mode.
func TestKeysRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(path, []byte("active: k1\nblock_key: "+strings.Repeat("b7", 32)+"\nkeys:\n  k1: "+strings.Repeat("a1", 32)+"\n"), 0o600))
	code, out, errOut := run(t, "keys", "rotate", "-key_file", path)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "version k2 added and active; chain [k1 k2]")
	k, err := pseudonym.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, "k2", k.Active().KeyVersion())

	code, _, errOut = run(t, "keys", "rotate")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errOut, "-key_file is required")

	require.NoError(t, os.Chmod(path, 0o644))
	code, _, errOut = run(t, "keys", "rotate", "-key_file", path)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "mode 0644")
}
