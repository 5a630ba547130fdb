package chmigrate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// The cluster variant of the schema (docs/clickhouse-cluster.md).
//
// ForCluster derives it from the one set of migrations, statement by statement:
//
//   - CREATE DATABASE gets ON CLUSTER '{cluster}'.
//   - CREATE TABLE of a sharded table T becomes two statements: {db}.T_local, which holds
//     the data, with the Replicated form of its engine on
//     '/clickhouse/tables/{shard}/{database}/{table}', '{replica}' and
//     replicated_deduplication_window instead of non_replicated_deduplication_window; and
//     {db}.T AS {db}.T_local ENGINE = Distributed('{cluster}', {db}, T_local[, key]). Every
//     reader (analysts, dashboards, rules) keeps naming T and reads every shard.
//   - CREATE TABLE of a table placed Everywhere (small tables every server joins with, and
//     the migrations' own record) keeps its name, with one replica group spanning every
//     server ('/clickhouse/tables/all/{database}/{table}', '{replica}'): no Distributed.
//   - CREATE MATERIALIZED VIEW gets ON CLUSTER and reads and writes the local tables: a
//     view fires on the server where its source's block is inserted, so it must watch
//     T_local (a view on the Distributed table would see only inserts made through that
//     server) and write the shard's own rollup.
//
// Any other statement, or a table without a placement, is an error: a migration added
// later must say where its table goes (schemas/clickhouse/cluster.go) or extend this rewrite.

// Everywhere is the placement of a table replicated on every server of the cluster.
const Everywhere = "*"

// MacroCluster is the macro every server of the cluster defines as the cluster's name;
// ON CLUSTER and the Distributed engines name the cluster through it.
const MacroCluster = "{cluster}"

// LocalSuffix names the table that holds a sharded table's data on each server.
const LocalSuffix = "_local"

// ErrNoClusterRewrite means a statement or a table has no cluster form.
var ErrNoClusterRewrite = errors.New("no cluster form")

// ErrBadClusterName means a cluster name is not a remote_servers name.
var ErrBadClusterName = errors.New("cluster name must match [A-Za-z_][A-Za-z0-9_.-]*")

// Cluster says how to lay the schema out on a cluster.
type Cluster struct {
	// Name is the cluster (a remote_servers entry). Statements name it through the
	// {cluster} macro; ApplyCluster checks that the server's macro and remote_servers agree.
	Name string
	// Tables gives each table's placement: Everywhere, or the sharding key of its
	// Distributed table ("" for a table only materialized views write: inserting into its
	// Distributed table is then refused by the server, as it should be).
	Tables map[string]string
	// NoOnCluster leaves ON CLUSTER out, so that each statement runs on the connected server
	// only. For tests on a server without a DDL queue; never for a real cluster.
	NoOnCluster bool
}

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// ValidateClusterName returns nil for a name remote_servers can hold.
func ValidateClusterName(name string) error {
	if !clusterName.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrBadClusterName)
	}
	return nil
}

var (
	createDatabase = regexp.MustCompile(`(?is)^(CREATE\s+DATABASE\s+IF\s+NOT\s+EXISTS\s+\{db\})(\s.*)?$`)
	createTable    = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*)\s*(\(.*\))\s*ENGINE\s*=\s*([A-Za-z]+)(\s*\(([^()]*)\))?(.*)$`)
	createView     = regexp.MustCompile(`(?is)^(CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+\{db\}\.[A-Za-z_][A-Za-z0-9_]*)(\s+TO\s+.*)$`)
	alterColumn    = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*)\s+((ADD|DROP|MODIFY|RENAME)\s+COLUMN\s.*)$`)
	dropStatement  = regexp.MustCompile(`(?is)^DROP\s+(VIEW|TABLE)\s+IF\s+EXISTS\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*)(\s+SYNC)?$`)
	tableRef       = regexp.MustCompile(`\{db\}\.([A-Za-z_][A-Za-z0-9_]*)`)
	dedupWindow    = regexp.MustCompile(`(?i)\bnon_replicated_deduplication_window\b`)
	mergeTree      = regexp.MustCompile(`^(Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing|Graphite)?MergeTree$`)
)

// ForCluster returns the cluster variant of migrations: the same versions, names and
// checksums (of the files), each statement rewritten as described above.
func ForCluster(migrations []Migration, c Cluster) ([]Migration, error) {
	if err := ValidateClusterName(c.Name); err != nil {
		return nil, err
	}
	out := make([]Migration, len(migrations))
	for i, m := range migrations {
		stmts, err := c.Rewrite(m.Statements)
		if err != nil {
			return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		out[i] = Migration{Version: m.Version, Name: m.Name, Checksum: m.Checksum, Statements: stmts}
	}
	return out, nil
}

// Rewrite returns the cluster form of statements.
func (c Cluster) Rewrite(statements []string) ([]string, error) {
	var out []string
	for _, s := range statements {
		r, err := c.rewrite(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", firstLine(s), err)
		}
		out = append(out, r...)
	}
	return out, nil
}

func (c Cluster) onCluster() string {
	if c.NoOnCluster {
		return ""
	}
	return " ON CLUSTER '" + MacroCluster + "'"
}

func (c Cluster) rewrite(s string) ([]string, error) {
	if m := createDatabase.FindStringSubmatch(s); m != nil {
		return []string{m[1] + c.onCluster() + m[2]}, nil
	}
	if m := createTable.FindStringSubmatch(s); m != nil {
		return c.rewriteTable(m[1], m[2], m[3], m[5], m[6])
	}
	if m := createView.FindStringSubmatch(s); m != nil {
		// The view's own name stays; every table it names, in TO and in its SELECT, is
		// the local table when that table is sharded.
		var err error
		body := tableRef.ReplaceAllStringFunc(m[2], func(ref string) string {
			name := ref[len(Placeholder)+1:]
			p, ok := c.Tables[name]
			switch {
			case !ok:
				err = fmt.Errorf("table %s has no cluster placement: %w", name, ErrNoClusterRewrite)
				return ref
			case p == Everywhere:
				return ref
			default:
				return ref + LocalSuffix
			}
		})
		if err != nil {
			return nil, err
		}
		return []string{m[1] + c.onCluster() + body}, nil
	}
	if m := alterColumn.FindStringSubmatch(s); m != nil {
		return c.onTable(m[1], func(t string) string { return "ALTER TABLE {db}." + t + c.onCluster() + " " + m[2] })
	}
	if m := dropStatement.FindStringSubmatch(s); m != nil {
		stmt := func(t string) string {
			return "DROP " + strings.ToUpper(m[1]) + " IF EXISTS {db}." + t + c.onCluster() + m[3]
		}
		if strings.EqualFold(m[1], "VIEW") {
			return []string{stmt(m[2])}, nil
		}
		return c.onTable(m[2], stmt)
	}
	return nil, fmt.Errorf("statement: %w (add it to pkg/chmigrate's rewrite)", ErrNoClusterRewrite)
}

// onTable returns stmt of the tables that hold a table's place on the cluster: the local
// table, then the Distributed one, of a sharded table; the table itself when it is
// everywhere.
func (c Cluster) onTable(name string, stmt func(table string) string) ([]string, error) {
	p, ok := c.Tables[name]
	if !ok {
		return nil, fmt.Errorf("table %s has no cluster placement (schemas/clickhouse/cluster.go): %w", name, ErrNoClusterRewrite)
	}
	if p == Everywhere {
		return []string{stmt(name)}, nil
	}
	return []string{stmt(name + LocalSuffix), stmt(name)}, nil
}

func (c Cluster) rewriteTable(name, columns, engine, args, rest string) ([]string, error) {
	p, ok := c.Tables[name]
	if !ok {
		return nil, fmt.Errorf("table %s has no cluster placement (schemas/clickhouse/cluster.go): %w", name, ErrNoClusterRewrite)
	}
	if !mergeTree.MatchString(engine) {
		return nil, fmt.Errorf("table %s: engine %s: %w", name, engine, ErrNoClusterRewrite)
	}
	path, replica := "'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'"
	if p == Everywhere {
		path = "'/clickhouse/tables/all/{database}/{table}'"
	}
	engineArgs := path + ", " + replica
	if a := strings.TrimSpace(args); a != "" {
		engineArgs += ", " + a
	}
	rest = dedupWindow.ReplaceAllString(rest, "replicated_deduplication_window")
	local := name
	if p != Everywhere {
		local = name + LocalSuffix
	}
	stmts := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS {db}.%s%s\n%s\nENGINE = Replicated%s(%s)%s",
		local, c.onCluster(), columns, engine, engineArgs, rest)}
	if p != Everywhere {
		dist := fmt.Sprintf("Distributed('%s', {db}, %s", MacroCluster, local)
		if p != "" {
			dist += ", " + p
		}
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS {db}.%s%s AS {db}.%s\nENGINE = %s)",
			name, c.onCluster(), local, dist))
	}
	return stmts, nil
}

// bootstrap is what Apply creates before reading the record of applied migrations.
func bootstrap() []string {
	return []string{
		"CREATE DATABASE IF NOT EXISTS {db}",
		`CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    version     UInt32,
    name        String,
    checksum    String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000`,
	}
}

// ApplyCluster applies the cluster variant of migrations (ForCluster with c) to database
// through the server conn is connected to, which must be a member of cluster c.Name with
// that name as its {cluster} macro. ON CLUSTER statements run on every server (the
// server waits for them, up to distributed_ddl_task_timeout); the record of applied
// migrations, schema_migrations, is replicated on every server, so any server knows
// what is applied.
func ApplyCluster(ctx context.Context, conn driver.Conn, database string, migrations []Migration, c Cluster, log *zap.Logger) (Result, error) {
	if err := ValidateClusterName(c.Name); err != nil {
		return Result{}, err
	}
	if err := CheckCluster(ctx, conn, c.Name); err != nil {
		return Result{}, err
	}
	tables := map[string]string{"schema_migrations": Everywhere}
	for k, v := range c.Tables {
		tables[k] = v
	}
	c.Tables = tables
	boot, err := c.Rewrite(bootstrap())
	if err != nil {
		return Result{}, err
	}
	cm, err := ForCluster(migrations, c)
	if err != nil {
		return Result{}, err
	}
	return apply(ctx, conn, database, cm, boot, true, log.With(zap.String("cluster", c.Name)))
}

// CheckCluster returns nil when the server conn is connected to knows cluster name in
// remote_servers and its {cluster} macro is name.
func CheckCluster(ctx context.Context, conn driver.Conn, name string) error {
	var shards uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = ?", name).Scan(&shards); err != nil {
		return fmt.Errorf("read system.clusters: %w", err)
	}
	if shards == 0 {
		return fmt.Errorf("cluster %q is not in the server's remote_servers", name)
	}
	var macros []struct {
		Macro        string `ch:"macro"`
		Substitution string `ch:"substitution"`
	}
	if err := conn.Select(ctx, &macros, "SELECT macro, substitution FROM system.macros"); err != nil {
		return fmt.Errorf("read system.macros: %w", err)
	}
	got := map[string]string{}
	for _, m := range macros {
		got[m.Macro] = m.Substitution
	}
	var missing []string
	for _, k := range []string{"cluster", "shard", "replica"} {
		if got[k] == "" {
			missing = append(missing, "{"+k+"}")
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the server defines no macro %s (the cluster schema needs {cluster}, {shard}, {replica})", strings.Join(missing, ", "))
	}
	if got["cluster"] != name {
		return fmt.Errorf("the server's {cluster} macro is %q, not %q", got["cluster"], name)
	}
	return nil
}

var (
	createAccess = regexp.MustCompile(`(?is)^(CREATE\s+(?:ROLE|SETTINGS\s+PROFILE|USER|QUOTA|ROW\s+POLICY)\s+(?:IF\s+NOT\s+EXISTS|OR\s+REPLACE)\s+[A-Za-z_][A-Za-z0-9_]*)(\s.*)?$`)
	grantSelect  = regexp.MustCompile(`(?is)^GRANT\s+(SELECT\s+ON\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*)\s+TO\s+.*)$`)
	// otherAccess is a grant on anything but one table of the database (system tables, a
	// whole database, *.*, a table engine) or a revoke: the same on every server.
	otherAccess = regexp.MustCompile(`(?is)^(GRANT|REVOKE)\s+(.*\sON\s+(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_*][A-Za-z0-9_]*)?|\{db\}\.\*|\*\.\*|\*)\s+(?:TO|FROM)\s+.*)$`)
)

// RewriteAccess returns the cluster form of access statements (roles/*.sql): ON CLUSTER on
// each, and every SELECT grant on a sharded table also on its local table — a
// query on a Distributed table runs on each shard as the initial user (the cluster's
// secret), who needs SELECT on the local table there.
func (c Cluster) RewriteAccess(statements []string) ([]string, error) {
	var out []string
	for _, s := range statements {
		s = strings.TrimSpace(s)
		if m := createAccess.FindStringSubmatch(s); m != nil {
			out = append(out, m[1]+c.onCluster()+m[2])
			continue
		}
		m := grantSelect.FindStringSubmatch(s)
		if m == nil {
			if m := otherAccess.FindStringSubmatch(s); m != nil {
				out = append(out, strings.ToUpper(m[1])+c.onCluster()+" "+m[2])
				continue
			}
			return nil, fmt.Errorf("%q: access statement: %w", firstLine(s), ErrNoClusterRewrite)
		}
		out = append(out, "GRANT"+c.onCluster()+" "+m[1])
		p, ok := c.Tables[m[2]]
		if !ok {
			return nil, fmt.Errorf("%q: table %s has no cluster placement: %w", firstLine(s), m[2], ErrNoClusterRewrite)
		}
		if p != Everywhere {
			out = append(out, "GRANT"+c.onCluster()+" "+strings.Replace(m[1], "{db}."+m[2], "{db}."+m[2]+LocalSuffix, 1))
		}
	}
	return out, nil
}
