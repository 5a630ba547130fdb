package chmigrate_test

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/chmigrate"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

func TestRewriteForCluster(t *testing.T) {
	c := chmigrate.Cluster{Name: "vigie", Tables: map[string]string{"t": "k", "t_count": "", "ref": chmigrate.Everywhere}}
	got, err := c.Rewrite([]string{
		"CREATE DATABASE IF NOT EXISTS {db}",
		"CREATE TABLE IF NOT EXISTS {db}.t\n(\n    k UInt16\n)\nENGINE = ReplacingMergeTree(k)\nORDER BY k\nSETTINGS non_replicated_deduplication_window = 10, index_granularity = 8192",
		"CREATE TABLE IF NOT EXISTS {db}.t_count (n SimpleAggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree ORDER BY tuple()",
		"CREATE TABLE IF NOT EXISTS {db}.ref (k UInt16) ENGINE = MergeTree ORDER BY k",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.t_count_mv\nTO {db}.t_count\nAS SELECT count() AS n FROM {db}.t JOIN {db}.ref USING k",
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER '{cluster}'",
		"CREATE TABLE IF NOT EXISTS {db}.t_local ON CLUSTER '{cluster}'\n(\n    k UInt16\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', k)\nORDER BY k\nSETTINGS replicated_deduplication_window = 10, index_granularity = 8192",
		"CREATE TABLE IF NOT EXISTS {db}.t ON CLUSTER '{cluster}' AS {db}.t_local\nENGINE = Distributed('{cluster}', {db}, t_local, k)",
		"CREATE TABLE IF NOT EXISTS {db}.t_count_local ON CLUSTER '{cluster}'\n(n SimpleAggregateFunction(sum, UInt64))\nENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY tuple()",
		"CREATE TABLE IF NOT EXISTS {db}.t_count ON CLUSTER '{cluster}' AS {db}.t_count_local\nENGINE = Distributed('{cluster}', {db}, t_count_local)",
		"CREATE TABLE IF NOT EXISTS {db}.ref ON CLUSTER '{cluster}'\n(k UInt16)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}') ORDER BY k",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.t_count_mv ON CLUSTER '{cluster}'\nTO {db}.t_count_local\nAS SELECT count() AS n FROM {db}.t_local JOIN {db}.ref USING k",
	}, got)

	got, err = c.Rewrite([]string{
		"ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS x String CODEC(ZSTD(1)) AFTER k",
		"ALTER TABLE {db}.ref DROP COLUMN IF EXISTS y",
		"DROP VIEW IF EXISTS {db}.t_count_mv",
		"DROP TABLE IF EXISTS {db}.t_count SYNC",
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"ALTER TABLE {db}.t_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS x String CODEC(ZSTD(1)) AFTER k",
		"ALTER TABLE {db}.t ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS x String CODEC(ZSTD(1)) AFTER k",
		"ALTER TABLE {db}.ref ON CLUSTER '{cluster}' DROP COLUMN IF EXISTS y",
		"DROP VIEW IF EXISTS {db}.t_count_mv ON CLUSTER '{cluster}'",
		"DROP TABLE IF EXISTS {db}.t_count_local ON CLUSTER '{cluster}' SYNC",
		"DROP TABLE IF EXISTS {db}.t_count ON CLUSTER '{cluster}' SYNC",
	}, got)

	c.NoOnCluster = true
	got, err = c.Rewrite([]string{"CREATE DATABASE IF NOT EXISTS {db}"})
	require.NoError(t, err)
	require.Equal(t, []string{"CREATE DATABASE IF NOT EXISTS {db}"}, got)
}

func TestRewriteRefusesWhatItCannotPlace(t *testing.T) {
	c := chmigrate.Cluster{Name: "vigie", Tables: map[string]string{"t": "k"}}
	for _, stmt := range []string{
		"CREATE TABLE IF NOT EXISTS {db}.other (k UInt8) ENGINE = MergeTree ORDER BY k",       // no placement
		"CREATE TABLE IF NOT EXISTS {db}.t (k UInt8) ENGINE = Memory",                         // not a MergeTree
		"ALTER TABLE {db}.other ADD COLUMN IF NOT EXISTS x UInt8",                             // no placement
		"ALTER TABLE {db}.t UPDATE k = 1 WHERE 1",                                             // a mutation, not a column
		"DROP TABLE IF EXISTS {db}.other SYNC",                                                // no placement
		"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.v TO {db}.other AS SELECT k FROM {db}.t", // target without placement
	} {
		_, err := c.Rewrite([]string{stmt})
		require.ErrorIs(t, err, chmigrate.ErrNoClusterRewrite, stmt)
	}
	for _, name := range []string{"", "a b", "a'b", "{cluster}"} {
		_, err := chmigrate.ForCluster(nil, chmigrate.Cluster{Name: name})
		require.ErrorIs(t, err, chmigrate.ErrBadClusterName, name)
	}
}

// clusterMigrations is the cluster variant of the real migrations.
func clusterMigrations(t *testing.T, noOnCluster bool) (single, cluster []chmigrate.Migration) {
	t.Helper()
	single, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	cluster, err = chmigrate.ForCluster(single, chmigrate.Cluster{Name: "vigie", Tables: chschema.ClusterTables, NoOnCluster: noOnCluster})
	require.NoError(t, err)
	return single, cluster
}

// TestClusterStatementsFormat parses and formats every statement of the cluster variant
// with the engine (formatQuery on the shared local server: no statement is run).
func TestClusterStatementsFormat(t *testing.T) {
	single, cluster := clusterMigrations(t, false)
	require.Len(t, cluster, len(single))
	conn := connect(t)
	n := 0
	for i, m := range cluster {
		require.Equal(t, single[i].Checksum, m.Checksum, "the record keeps the file's checksum")
		for _, s := range m.Statements {
			q, err := chmigrate.Bind(s, "vigie")
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var formatted string
			err = conn.QueryRow(ctx, "SELECT formatQuery(?)", q).Scan(&formatted)
			cancel()
			require.NoError(t, err, q)
			require.Regexp(t, "ON CLUSTER [`']\\{cluster\\}[`']", formatted, q)
			switch {
			case strings.Contains(formatted, "ENGINE = Distributed"):
				require.Regexp(t, `ENGINE = Distributed\('\{cluster\}', vigie, [a-z_]+_local`, formatted)
			case strings.HasPrefix(formatted, "CREATE TABLE"):
				require.Regexp(t, `ENGINE = Replicated[A-Za-z]*MergeTree\('/clickhouse/tables/(\{shard\}|all)/\{database\}/\{table\}', '\{replica\}'`, formatted)
				require.NotContains(t, formatted, "non_replicated_deduplication_window")
			case strings.HasPrefix(formatted, "CREATE MATERIALIZED VIEW"):
				require.Regexp(t, `TO vigie\.[a-z_]+_local`, formatted)
				require.Contains(t, formatted, "FROM vigie.detections_local")
			}
			n++
		}
	}
	roleFiles, err := fs.Glob(chschema.Roles, "roles/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, roleFiles)
	var access []string
	for _, f := range roleFiles {
		sql, err := fs.ReadFile(chschema.Roles, f)
		require.NoError(t, err)
		stmts, err := chmigrate.Cluster{Name: "vigie", Tables: chschema.ClusterTables}.RewriteAccess(chmigrate.SplitStatements(string(sql)))
		require.NoError(t, err, f)
		access = append(access, stmts...)
	}
	for _, s := range access {
		q, err := chmigrate.Bind(s, "vigie")
		require.NoError(t, err)
		var formatted string
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT formatQuery(?)", q).Scan(&formatted), q)
		require.Regexp(t, "ON CLUSTER [`']\\{cluster\\}[`']", formatted, q)
		n++
	}
	t.Logf("%d cluster statements formatted by the engine", n)
}

func TestRewriteAccessForCluster(t *testing.T) {
	c := chmigrate.Cluster{Name: "vigie", Tables: chschema.ClusterTables}
	got, err := c.RewriteAccess(chmigrate.SplitStatements(chschema.AnalystRole))
	require.NoError(t, err)
	require.Contains(t, got, "CREATE ROLE IF NOT EXISTS vigie_analyst ON CLUSTER '{cluster}'")
	require.Contains(t, got, "GRANT ON CLUSTER '{cluster}' SELECT ON {db}.detections TO vigie_analyst")
	require.Contains(t, got, "GRANT ON CLUSTER '{cluster}' SELECT ON {db}.detections_local TO vigie_analyst")
	require.Contains(t, got, "GRANT ON CLUSTER '{cluster}' SELECT ON {db}.facilities TO vigie_analyst")
	require.NotContains(t, got, "GRANT ON CLUSTER '{cluster}' SELECT ON {db}.facilities_local TO vigie_analyst")
	for _, s := range got {
		require.Contains(t, s, "ON CLUSTER '{cluster}'")
	}
	_, err = c.RewriteAccess([]string{"GRANT SELECT ON {db}.unknown TO r"})
	require.ErrorIs(t, err, chmigrate.ErrNoClusterRewrite)
}

// TestEveryTableIsPlaced: schemas/clickhouse/cluster.go names exactly the tables the
// migrations create (ForCluster refuses a table without a placement; a stale one is caught here).
func TestEveryTableIsPlaced(t *testing.T) {
	single, _ := clusterMigrations(t, false)
	created := map[string]bool{}
	re := regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*)`)
	for _, m := range single {
		for _, s := range m.Statements {
			if g := re.FindStringSubmatch(s); g != nil {
				created[g[1]] = true
			}
		}
	}
	placed := map[string]bool{}
	for name := range chschema.ClusterTables {
		placed[name] = true
	}
	require.Equal(t, created, placed)
	require.Equal(t, chmigrate.Everywhere, chschema.Everywhere)
}
