// Package chmigrate applies Vigie's numbered ClickHouse migrations to a database, once.
//
// Migrations are SQL files named NNNN_name.sql whose statements name tables as {db}.table
// and end with ';' at the end of a line. Apply replaces {db} with the quoted target
// database, runs each pending migration's statements in order and records the migration in
// {db}.schema_migrations (version, name, checksum).
//
// Safe to run twice and from two processes at once, because:
//   - every statement is idempotent (CREATE … IF NOT EXISTS, ALTER … IF [NOT] EXISTS; Load
//     refuses a statement that is not), and ClickHouse serialises DDL on one table name, so
//     two processes racing on the same migration both converge to the same schema;
//   - the record is inserted with a deterministic insert_deduplication_token and
//     schema_migrations has a deduplication window, so two racing inserts leave one row
//     (ReplacingMergeTree keyed by version mops up any that slips past the window);
//   - a migration interrupted half way is not recorded and is simply run again;
//   - an applied migration whose file changed since is an error (ErrChecksumMismatch):
//     migrations are never edited after release.
package chmigrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// Placeholder is the token in migration SQL that stands for the target database.
const Placeholder = "{db}"

// Sentinel errors.
var (
	// ErrChecksumMismatch means an applied migration's file differs from what was applied.
	ErrChecksumMismatch = errors.New("migration changed after it was applied")
	// ErrBadDatabaseName means the database name is not a plain identifier.
	ErrBadDatabaseName = errors.New("database name must match [A-Za-z_][A-Za-z0-9_]*")
	// ErrLayout means a database migrated for one server is migrated for a cluster, or the
	// reverse; converting one into the other is not automated.
	ErrLayout = errors.New("the database has the other layout")
	// ErrNotIdempotent means a migration statement cannot be run twice safely.
	ErrNotIdempotent = errors.New("statement is not idempotent (needs IF NOT EXISTS / IF EXISTS)")
)

// Migration is one numbered SQL file.
type Migration struct {
	Version    uint32
	Name       string
	Checksum   string   // hex SHA-256 of the file
	Statements []string // with the {db} placeholder still in place
}

var (
	fileName   = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	idempotent = regexp.MustCompile(`(?is)^(CREATE\s+.*\bIF\s+NOT\s+EXISTS\b|ALTER\s+.*\bIF\s+(NOT\s+)?EXISTS\b|DROP\s+.*\bIF\s+EXISTS\b|GRANT\b|REVOKE\b)`)
)

// Load reads the migrations at the root of fsys, sorted by version.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[uint32]string{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			continue
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		if prev, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(".", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		stmts := SplitStatements(string(b))
		for _, s := range stmts {
			if !idempotent.MatchString(s) {
				return nil, fmt.Errorf("migration %s: %q: %w", e.Name(), firstLine(s), ErrNotIdempotent)
			}
		}
		out = append(out, Migration{Version: uint32(v), Name: m[2], Checksum: hex.EncodeToString(sum[:]), Statements: stmts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SplitStatements splits SQL text into statements: a statement ends with ';' at the end of
// a line. Comment lines (--) are dropped; quotes and comments must not hold such a ';'.
func SplitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Bind replaces the database placeholder in stmt with the quoted database name.
func Bind(stmt, database string) (string, error) {
	if !identifier.MatchString(database) {
		return "", fmt.Errorf("%q: %w", database, ErrBadDatabaseName)
	}
	return strings.ReplaceAll(stmt, Placeholder, "`"+database+"`"), nil
}

// Result says what Apply did.
type Result struct {
	Applied []uint32 // versions applied by this call
	Skipped []uint32 // versions found already applied
}

// Apply applies the pending migrations to database, creating it when needed.
func Apply(ctx context.Context, conn driver.Conn, database string, migrations []Migration, log *zap.Logger) (Result, error) {
	return apply(ctx, conn, database, migrations, bootstrap(), false, log)
}

// apply creates what bootstrap says (the database and schema_migrations), then applies the
// pending migrations.
func apply(ctx context.Context, conn driver.Conn, database string, migrations []Migration, bootstrap []string, cluster bool, log *zap.Logger) (Result, error) {
	var res Result
	for _, s := range bootstrap {
		if err := exec(ctx, conn, s, database); err != nil {
			return res, fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	// A database is migrated for one server or for a cluster, for good: CREATE … IF NOT
	// EXISTS would otherwise leave the other layout's tables in place and report success.
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'schema_migrations'", database).Scan(&engine); err != nil {
		return res, fmt.Errorf("read schema_migrations' engine: %w", err)
	}
	switch replicated := strings.HasPrefix(engine, "Replicated"); {
	case cluster && !replicated:
		return res, fmt.Errorf("database %s was migrated for one server (schema_migrations is %s): %w", database, engine, ErrLayout)
	case !cluster && replicated:
		return res, fmt.Errorf("database %s was migrated for a cluster (schema_migrations is %s; migrate with its cluster): %w", database, engine, ErrLayout)
	}
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return res, err
	}
	for _, m := range migrations {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return res, fmt.Errorf("migration %04d_%s (applied checksum %.12s, file %.12s): %w",
					m.Version, m.Name, sum, m.Checksum, ErrChecksumMismatch)
			}
			res.Skipped = append(res.Skipped, m.Version)
			continue
		}
		for i, s := range m.Statements {
			if err := exec(ctx, conn, s, database); err != nil {
				return res, fmt.Errorf("migration %04d_%s statement %d (%s): %w", m.Version, m.Name, i+1, firstLine(s), err)
			}
		}
		if err := record(ctx, conn, database, m); err != nil {
			return res, err
		}
		log.Info("migration applied", zap.String("database", database), zap.Uint32("version", m.Version), zap.String("name", m.Name))
		res.Applied = append(res.Applied, m.Version)
	}
	// Re-check: another process may have recorded the same migrations meanwhile; the record
	// must hold exactly the files' checksums.
	applied, err = appliedVersions(ctx, conn, database)
	if err != nil {
		return res, err
	}
	for _, m := range migrations {
		if applied[m.Version] != m.Checksum {
			return res, fmt.Errorf("migration %04d_%s not recorded with checksum %.12s after apply: %w", m.Version, m.Name, m.Checksum, ErrChecksumMismatch)
		}
	}
	return res, nil
}

// ApplySQL runs free-standing SQL (e.g. the analyst role) on database, statement by
// statement, without recording it.
func ApplySQL(ctx context.Context, conn driver.Conn, database, sql string) error {
	return applyStatements(ctx, conn, database, SplitStatements(sql))
}

// ApplyAccessSQL runs access statements (e.g. the analyst role) on every server of cluster
// c (Cluster.RewriteAccess), without recording them.
func ApplyAccessSQL(ctx context.Context, conn driver.Conn, database, sql string, c Cluster) error {
	stmts, err := c.RewriteAccess(SplitStatements(sql))
	if err != nil {
		return err
	}
	return applyStatements(ctx, conn, database, stmts)
}

func applyStatements(ctx context.Context, conn driver.Conn, database string, stmts []string) error {
	for i, s := range stmts {
		if err := exec(ctx, conn, s, database); err != nil {
			return fmt.Errorf("statement %d (%s): %w", i+1, firstLine(s), err)
		}
	}
	return nil
}

func record(ctx context.Context, conn driver.Conn, database string, m Migration) error {
	token := fmt.Sprintf("schema_migrations:%d:%s", m.Version, m.Checksum)
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	q, err := Bind("INSERT INTO {db}.schema_migrations (version, name, checksum)", database)
	if err != nil {
		return err
	}
	batch, err := conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	if err := batch.Append(m.Version, m.Name, m.Checksum); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	return nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[uint32]string, error) {
	q, err := Bind("SELECT version, argMax(checksum, applied_at) FROM {db}.schema_migrations GROUP BY version", database)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

func exec(ctx context.Context, conn driver.Conn, stmt, database string) error {
	q, err := Bind(stmt, database)
	if err != nil {
		return err
	}
	return conn.Exec(ctx, q)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
