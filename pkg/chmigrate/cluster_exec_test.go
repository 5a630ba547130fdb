package chmigrate

import (
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// TestClusterSchemaExecuted runs the cluster variant's DDL on a chDB server of its own that
// is configured as a member of cluster "vigie" (macros {cluster} {shard} {replica},
// remote_servers of two shards, a ZooKeeper from Maven Central): the Replicated tables
// register in ZooKeeper under the paths of the macros, the Distributed tables are created
// over the local tables, the views on the local tables; every table has the columns of the
// single-server schema. ON CLUSTER is left out (chDB runs no DDL queue).
//
// What chDB cannot run, found here and written down in docs/clickhouse-cluster.md: a
// Replicated table stays read-only (its replica never activates, and an INSERT hangs the
// engine), and a Distributed insert or select, or clusterAllReplicas, to another local
// server fails on the local server's protocol (no TablesStatusRequest packet, no client
// interface LOCAL in a secondary query). So no row goes through the cluster schema here,
// and no ALTER of a Replicated table runs (its replica is read-only).
func TestClusterSchemaExecuted(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	lib := os.Getenv("CHDB_LIB_PATH")
	if lib == "" {
		lib = filepath.Join(root, ".cache/chdb/libchdb.so")
	}
	require.FileExists(t, lib, "libchdb.so: make deps")
	bin := chserverBinary(t, root)
	zkAddr := startZooKeeper(t, root)

	dir := t.TempDir()
	chAddr := freeAddr(t)
	_, zkPort, _ := net.SplitHostPort(zkAddr)
	_, chPort, _ := net.SplitHostPort(chAddr)
	// chDB reads config.xml from its working directory, as clickhouse-local does.
	config := fmt.Sprintf(`<clickhouse>
  <macros><cluster>vigie</cluster><shard>1</shard><replica>r1</replica></macros>
  <remote_servers><vigie>
    <shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%s</port></replica></shard>
    <shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%s</port></replica></shard>
  </vigie></remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>%s</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
</clickhouse>
`, chPort, chPort, zkPort)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644))
	const password = "cluster-test"
	cmd := osexec.Command(bin, "-listen", chAddr, "-http", "off", "-data", filepath.Join(dir, "data"), "-lib", lib, "-log-level", "warn",
		"-users", "admin:"+password+":admin", "-roles", filepath.Join(root, "schemas/clickhouse/roles"))
	cmd.Dir = dir
	// Its log stays in the test's folder: chDB may crash while it shuts down with
	// Replicated tables open (SIGSEGV in chdb_close, seen with 26.5), which is noise here.
	chLog, err := os.Create(filepath.Join(dir, "chserver.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = chLog, chLog
	require.NoError(t, cmd.Start())
	stopByPID(t, "chserver", cmd, 10*time.Second)

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, DialTimeout: time.Second, Auth: clickhouse.Auth{Username: "admin", Password: password}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { return conn.Ping(ctx) == nil }, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, CheckCluster(ctx, conn, "vigie"))
	require.ErrorContains(t, CheckCluster(ctx, conn, "other"), `cluster "other" is not in the server's remote_servers`)

	single, err := Load(chschema.Migrations)
	require.NoError(t, err)
	// chDB cannot ALTER a Replicated table either (TABLE_IS_READ_ONLY): the migrations from
	// the first that alters a column on are run here neither on one server nor on the
	// cluster; TestClusterStatementsFormat and TestRewriteForCluster check their cluster form.
	for i, m := range single {
		if slices.ContainsFunc(m.Statements, func(s string) bool { return strings.HasPrefix(s, "ALTER TABLE") }) {
			t.Logf("not run (an ALTER of a Replicated table): migrations %04d to %04d", m.Version, single[len(single)-1].Version)
			single = single[:i]
			break
		}
	}
	_, err = Apply(ctx, conn, "single", single, zap.NewNop())
	require.NoError(t, err)

	tables := map[string]string{"schema_migrations": Everywhere}
	for k, v := range chschema.ClusterTables {
		tables[k] = v
	}
	c := Cluster{Name: "vigie", Tables: tables, NoOnCluster: true}
	boot, err := c.Rewrite(bootstrap())
	require.NoError(t, err)
	cm, err := ForCluster(single, c)
	require.NoError(t, err)
	stmts := boot
	for _, m := range cm {
		stmts = append(stmts, m.Statements...)
	}
	start := time.Now()
	for _, s := range stmts {
		require.NoError(t, exec(ctx, conn, s, "clu"), s)
	}
	t.Logf("%d cluster statements executed in %s", len(stmts), time.Since(start).Round(time.Millisecond))

	// Every Replicated table has its replica in ZooKeeper under the macros' path.
	var replicas []struct {
		Table string `ch:"table"`
		Path  string `ch:"zookeeper_path"`
		Name  string `ch:"replica_name"`
	}
	require.NoError(t, conn.Select(ctx, &replicas, "SELECT table, zookeeper_path, replica_name FROM system.replicas WHERE database = 'clu' ORDER BY table"))
	var present []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = 'single'")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		present = append(present, name)
	}
	require.NoError(t, rows.Err())
	want := map[string]string{}
	for name, p := range tables {
		if !slices.Contains(present, name) {
			continue // dropped by a later migration, or not yet created by those run here
		}
		if p == Everywhere {
			want[name] = "/clickhouse/tables/all/clu/" + name
		} else {
			want[name+LocalSuffix] = "/clickhouse/tables/1/clu/" + name + LocalSuffix
		}
	}
	got := map[string]string{}
	for _, r := range replicas {
		require.Equal(t, "r1", r.Name, r.Table)
		got[r.Table] = r.Path
	}
	require.Equal(t, want, got)
	// chDB has no system.zookeeper: ask ZooKeeper itself.
	for _, path := range []string{"/clickhouse/tables/1/clu/detections_local/replicas", "/clickhouse/tables/all/clu/schema_migrations/replicas"} {
		ls := osexec.Command("java", "-cp", filepath.Join(root, ".cache/zookeeper/libs")+"/*", "org.apache.zookeeper.ZooKeeperMain", "-server", zkAddr, "ls", path)
		out, err := ls.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "[r1]", path)
	}

	// Columns: the single-server table's, in the Distributed table (readers) and in the local
	// table (the writer's and the views' inserts).
	cols := func(db, table string) []string {
		var out []struct {
			Name    string `ch:"name"`
			Type    string `ch:"type"`
			Kind    string `ch:"default_kind"`
			Default string `ch:"default_expression"`
		}
		require.NoError(t, conn.Select(ctx, &out, "SELECT name, type, default_kind, default_expression FROM system.columns WHERE database = ? AND table = ? ORDER BY position", db, table))
		var s []string
		for _, c := range out {
			s = append(s, strings.Join([]string{c.Name, c.Type, c.Kind, strings.ReplaceAll(c.Default, "`", "")}, " "))
		}
		require.NotEmpty(t, s, db+"."+table)
		return s
	}
	var engines []struct {
		Name   string `ch:"name"`
		Engine string `ch:"engine"`
		Full   string `ch:"engine_full"`
		Create string `ch:"create_table_query"`
	}
	require.NoError(t, conn.Select(ctx, &engines, "SELECT name, engine, engine_full, create_table_query FROM system.tables WHERE database = 'single' ORDER BY name"))
	clu := map[string]string{}
	var cluTables []struct {
		Name   string `ch:"name"`
		Engine string `ch:"engine"`
		Full   string `ch:"engine_full"`
		Create string `ch:"create_table_query"`
	}
	require.NoError(t, conn.Select(ctx, &cluTables, "SELECT name, engine, engine_full, create_table_query FROM system.tables WHERE database = 'clu' ORDER BY name"))
	for _, t := range cluTables {
		clu[t.Name] = t.Engine + " | " + t.Full + " | " + t.Create
	}
	var names []string
	for _, e := range engines {
		names = append(names, e.Name)
		got, ok := clu[e.Name]
		require.True(t, ok, "clu.%s", e.Name)
		if e.Engine == "MaterializedView" {
			require.Regexp(t, `TO clu\.[a-z_]+_local`, got, e.Name)
			require.Contains(t, got, "FROM clu.detections_local", e.Name)
			continue
		}
		p := tables[e.Name]
		if p == Everywhere {
			require.Contains(t, got, "Replicated"+e.Engine+" | ", e.Name)
			require.Equal(t, cols("single", e.Name), cols("clu", e.Name), e.Name)
			continue
		}
		dist := fmt.Sprintf("Distributed('{cluster}', 'clu', '%s_local'", e.Name)
		if p != "" {
			dist += ", " + p
		}
		require.Contains(t, strings.ReplaceAll(strings.ReplaceAll(got, "`", "'"), "clu, "+e.Name, "'clu', '"+e.Name), dist, e.Name)
		require.True(t, strings.HasPrefix(clu[e.Name+LocalSuffix], "Replicated"+e.Engine+" | "), "%s_local: %s", e.Name, clu[e.Name+LocalSuffix])
		if strings.Contains(e.Create, "non_replicated_deduplication_window") {
			require.Contains(t, clu[e.Name+LocalSuffix], "replicated_deduplication_window = 10000", e.Name)
		}
		require.Equal(t, cols("single", e.Name), cols("clu", e.Name), e.Name)
		require.Equal(t, cols("single", e.Name), cols("clu", e.Name+LocalSuffix), e.Name)
	}
	sort.Strings(names)
	t.Logf("tables and views compared: %s", strings.Join(names, ", "))

	// A database keeps its layout: the single-server migrate refuses the cluster database,
	// the cluster migrate the single-server one.
	_, err = Apply(ctx, conn, "clu", single, zap.NewNop())
	require.ErrorIs(t, err, ErrLayout)
	require.ErrorContains(t, err, "migrated for a cluster")
	_, err = ApplyCluster(ctx, conn, "single", single, c, zap.NewNop())
	require.ErrorIs(t, err, ErrLayout)
	require.ErrorContains(t, err, "migrated for one server")

	// What this engine cannot do with them: the replicas stay read-only.
	var readonly uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT countIf(is_readonly) FROM system.replicas WHERE database = 'clu'").Scan(&readonly))
	t.Logf("%d of %d replicas read-only on chDB (their replica never activates; inserts are not attempted)", readonly, len(replicas))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// stopByPID stops cmd at the end of the test: SIGTERM, then SIGKILL after grace.
func stopByPID(t *testing.T, name string, cmd *osexec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			t.Logf("%s (pid %d) still running %s after SIGTERM: SIGKILL", name, cmd.Process.Pid, grace)
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// chserverBinary builds the local server.
func chserverBinary(t *testing.T, root string) string {
	// Built from the working tree (go build caches it), not .cache/bin/chserver, which may
	// predate the flags used here.
	bin := filepath.Join(t.TempDir(), "chserver")
	build := osexec.Command("go", "build", "-o", bin, "./cmd/chserver")
	build.Dir = filepath.Join(root, "deploy/local/chserver")
	build.Env = append(os.Environ(), "GOWORK=off")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build chserver: %s", out)
	return bin
}

// startZooKeeper starts a standalone Apache ZooKeeper (jars from Maven Central, fetched
// once into .cache/zookeeper/libs with testdata/zookeeper/pom.xml) on a free port.
func startZooKeeper(t *testing.T, root string) string {
	libs := filepath.Join(root, ".cache/zookeeper/libs")
	if _, err := os.Stat(filepath.Join(libs, "commons-cli-1.5.0.jar")); err != nil {
		pom, err := filepath.Abs("testdata/zookeeper/pom.xml")
		require.NoError(t, err)
		mvn := osexec.Command("mvn", "-q", "-B", "-f", pom, "dependency:copy-dependencies", "-DoutputDirectory="+libs)
		out, err := mvn.CombinedOutput()
		require.NoError(t, err, "fetch ZooKeeper with mvn: %s", out)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "zoo.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(
		"tickTime=500\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxSessionTimeout=60000\n4lw.commands.whitelist=ruok\n",
		filepath.Join(dir, "data"), port)), 0o644))
	cmd := osexec.Command("java", "-Xmx256m", "-cp", libs+"/*", "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	log, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	stopByPID(t, "zookeeper", cmd, 5*time.Second)
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("ruok"))
		b := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := c.Read(b)
		return string(b[:n]) == "imok"
	}, 20*time.Second, 100*time.Millisecond, "ZooKeeper on %s", addr)
	return addr
}
