package chref

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

// No server here runs ON CLUSTER or stores rows in a Replicated table
// (docs/clickhouse-cluster.md, "What was executed here"), so the cluster loads are tested
// by what the loader sends: a recording connection stands in for the cluster, answering the
// layout the cluster migrations give the reference tables, and every statement recorded is
// formatted by the engine (formatQuery on the local server), which parses it as ClickHouse
// would.

// clusterConn records the statements a cluster load sends. The methods a load does not call
// are the embedded nil interface's.
type clusterConn struct {
	driver.Conn
	mu      sync.Mutex
	execs   []string
	inserts map[string]int // INSERT statement → rows sent
	layouts map[string][3]string
	failOn  string // an Exec containing it fails once
}

func (c *clusterConn) Exec(_ context.Context, query string, _ ...any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.execs = append(c.execs, query)
	if c.failOn != "" && strings.Contains(query, c.failOn) {
		c.failOn = ""
		return errors.New("injected failure")
	}
	return nil
}

func (c *clusterConn) Query(_ context.Context, query string, args ...any) (driver.Rows, error) {
	if strings.Contains(query, "ref_version") {
		return &fakeRows{rows: [][]string{{""}}}, nil // no version loaded yet
	}
	if !strings.Contains(query, "system.tables") {
		return nil, errors.New("unexpected query: " + query)
	}
	l, ok := c.layouts[args[1].(string)]
	if !ok {
		return &fakeRows{}, nil
	}
	return &fakeRows{rows: [][]string{l[:]}}, nil
}

func (c *clusterConn) PrepareBatch(_ context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &fakeBatch{conn: c, query: query}, nil
}

type fakeRows struct {
	driver.Rows
	rows [][]string
	i    int
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }
func (r *fakeRows) Scan(dest ...any) error {
	for k, d := range dest {
		*d.(*string) = r.rows[r.i-1][k]
	}
	return nil
}
func (r *fakeRows) Close() error { return nil }
func (r *fakeRows) Err() error   { return nil }

type fakeBatch struct {
	driver.Batch
	conn  *clusterConn
	query string
	n     int
}

func (b *fakeBatch) Append(...any) error { b.n++; return nil }
func (b *fakeBatch) Abort() error        { return nil }
func (b *fakeBatch) Send() error {
	b.conn.mu.Lock()
	defer b.conn.mu.Unlock()
	b.conn.inserts[b.query] = b.n
	return nil
}

// clusterLayouts is what system.tables says of the reference tables on a server migrated
// with the cluster variant: their engine and keys, taken from chmigrate.ForCluster's
// statements so that the test follows the migrations.
func clusterLayouts(t *testing.T) map[string][3]string {
	t.Helper()
	migrations, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	cm, err := chmigrate.ForCluster(migrations, chmigrate.Cluster{Name: "vigie", Tables: chschema.ClusterTables})
	require.NoError(t, err)
	create := regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) ON CLUSTER .*ENGINE = (\w+)\(.*\)\s*ORDER BY \(?([^)\n]*)\)?\s*$`)
	out := map[string][3]string{}
	for _, m := range cm {
		for _, s := range m.Statements {
			if g := create.FindStringSubmatch(s); g != nil {
				out[g[1]] = [3]string{g[2], g[3], ""}
			}
		}
	}
	for _, table := range Tables {
		require.Contains(t, out, table)
		require.Equal(t, "ReplicatedMergeTree", out[table][0], table)
	}
	return out
}

func TestClusterLoadStatements(t *testing.T) {
	conn := &clusterConn{inserts: map[string]int{}, layouts: clusterLayouts(t)}
	l, err := NewClusterLoader(conn, "vigie", "vigie", zaptest.NewLogger(t))
	require.NoError(t, err)
	checks := 0
	l.checkCluster = func(context.Context) error { checks++; return nil }
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)

	n, err := l.Load(context.Background(), snap)
	require.NoError(t, err)
	require.Equal(t, len(Tables), n)
	require.Equal(t, 1, checks)
	require.Len(t, conn.execs, 4*len(Tables))
	st := snap.Stats()
	want := map[string]int{"facilities": st.Facilities, "sensors": st.Sensors, "tac_models": st.TACs, "operators": st.Operators}
	stagingNames := map[string]bool{}
	staging := regexp.MustCompile("^CREATE TABLE `vigie`.`(\\w+)_load_([0-9a-f]{8})` ON CLUSTER '\\{cluster\\}' AS `vigie`.`(\\w+)` ENGINE = ReplicatedMergeTree\\('/clickhouse/tables/all/\\{database\\}/\\{table\\}', '\\{replica\\}'\\) ORDER BY \\((.+)\\)$")
	for i, table := range Tables {
		e := conn.execs[4*i : 4*i+4]
		g := staging.FindStringSubmatch(e[0])
		require.NotNil(t, g, e[0])
		require.Equal(t, table, g[1])
		require.Equal(t, table, g[3])
		require.Equal(t, conn.layouts[table][1], g[4], "the live table's sorting key")
		name := "`vigie`.`" + table + "_load_" + g[2] + "`"
		require.False(t, stagingNames[name], "a staging name per load")
		stagingNames[name] = true
		require.Equal(t, want[table], conn.inserts["INSERT INTO "+name+" ("+columns[table]+")"], table)
		// Every replica holds the rows before any server swaps; then swap; then drop.
		require.Equal(t, []string{
			"SYSTEM SYNC REPLICA ON CLUSTER '{cluster}' " + name,
			"EXCHANGE TABLES `vigie`.`" + table + "` AND " + name + " ON CLUSTER '{cluster}'",
			"DROP TABLE IF EXISTS " + name + " ON CLUSTER '{cluster}' SYNC",
		}, e[1:], table)
	}

	// Every statement is one ClickHouse parses (and so would send to the DDL queue).
	local := open(t)
	for _, s := range conn.execs {
		var formatted string
		rows, err := local.Query(context.Background(), "SELECT formatQuery(?)", s)
		require.NoError(t, err, s)
		for rows.Next() {
			require.NoError(t, rows.Scan(&formatted))
		}
		require.NoError(t, rows.Err(), s)
		rows.Close()
		require.NotEmpty(t, formatted, s)
		t.Log(formatted)
	}

	// The next load makes new staging tables (new Keeper paths); the cluster is checked
	// once per loader.
	conn.execs = nil
	_, err = l.Load(context.Background(), snap)
	require.NoError(t, err)
	require.Equal(t, 1, checks)
	for _, s := range conn.execs {
		for name := range stagingNames {
			require.NotContains(t, s, name)
		}
	}
}

// TestClusterLoadFailures: a failed step leaves no staging table (the DROP ON CLUSTER is
// sent whatever failed, the CREATE included), and the loader refuses a database migrated
// for one server.
func TestClusterLoadFailures(t *testing.T) {
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	for _, step := range []string{"CREATE TABLE", "SYSTEM SYNC REPLICA", "EXCHANGE TABLES"} {
		t.Run(step, func(t *testing.T) {
			conn := &clusterConn{inserts: map[string]int{}, layouts: clusterLayouts(t), failOn: step}
			l, err := NewClusterLoader(conn, "vigie", "vigie", zaptest.NewLogger(t))
			require.NoError(t, err)
			l.checkCluster = func(context.Context) error { return nil }
			l.attempt.Initial, l.attempt.Max = 1, 1
			_, err = l.Load(context.Background(), snap)
			require.NoError(t, err, "the next attempt succeeds")
			created := map[string]bool{}
			for _, s := range conn.execs {
				if strings.HasPrefix(s, "CREATE TABLE ") {
					created[strings.Fields(s)[2]] = true
				}
				if strings.HasPrefix(s, "DROP TABLE IF EXISTS ") {
					delete(created, strings.Fields(s)[4])
				}
			}
			require.Empty(t, created)
		})
	}

	single := clusterLayouts(t)
	single["facilities"] = [3]string{"MergeTree", "facility_id", ""}
	conn := &clusterConn{inserts: map[string]int{}, layouts: single}
	l, err := NewClusterLoader(conn, "vigie", "vigie", zaptest.NewLogger(t))
	require.NoError(t, err)
	l.checkCluster = func(context.Context) error { return nil }
	l.attempt.Initial, l.attempt.Max = 1, 1
	_, err = l.Load(context.Background(), snap)
	require.ErrorContains(t, err, "not ReplicatedMergeTree")
	require.Empty(t, conn.execs, "nothing created")

	_, err = NewClusterLoader(conn, "vigie", "a'b", zaptest.NewLogger(t))
	require.ErrorIs(t, err, chmigrate.ErrBadClusterName)
}
