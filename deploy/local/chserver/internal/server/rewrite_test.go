package server

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want statementKind
	}{
		{"SELECT 1", stmtSelect},
		{"  -- comment\n/* c */ with x as (select 1) select * from x", stmtSelect},
		{"(SELECT 1) UNION ALL (SELECT 2)", stmtSelect},
		{"SHOW TABLES", stmtSelect},
		{"insert into t (a) format Native", stmtInsert},
		{"SET max_threads = 1", stmtSet},
		{"USE db", stmtUse},
		{"CREATE TABLE t (a UInt8) ENGINE = Memory", stmtOther},
		{"", stmtOther},
	} {
		toks, err := lex(c.sql)
		require.NoError(t, err)
		require.Equal(t, c.want, classify(c.sql, toks), c.sql)
	}
}

func TestRewriteSelect(t *testing.T) {
	one := []sqlSetting{{Key: "max_threads", Value: "'2'"}}
	for _, c := range []struct {
		sql      string
		settings []sqlSetting
		want     string
	}{
		{"SELECT 1", nil, "SELECT 1"},
		{"SELECT 1;", one, "SELECT 1 SETTINGS max_threads = '2'"},
		{"SELECT 1 FORMAT JSON", one, "SELECT 1 SETTINGS max_threads = '2'"},
		{"SELECT 1 SETTINGS a = 1 FORMAT TSV;", one, "SELECT 1 SETTINGS a = 1, max_threads = '2'"},
		{"SELECT value FROM system.settings WHERE name = 'format'", one, "SELECT value FROM system.settings WHERE name = 'format' SETTINGS max_threads = '2'"},
		{"SELECT * FROM (SELECT 1 SETTINGS a = 1)", one, "SELECT * FROM (SELECT 1 SETTINGS a = 1) SETTINGS max_threads = '2'"},
		{"SELECT 'FORMAT JSON' AS format", nil, "SELECT 'FORMAT JSON' AS format"},
	} {
		got, err := rewriteSelect(c.sql, c.settings)
		require.NoError(t, err)
		require.Equal(t, c.want, got, c.sql)
	}
	_, err := rewriteSelect("SELECT 'unterminated", nil)
	require.Error(t, err)
}

func TestParseInsert(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want insertStatement
	}{
		{"INSERT INTO t FORMAT Native", insertStatement{Table: "t", Format: "Native"}},
		{"INSERT INTO db.t (a, `b c`, \"d\") FORMAT Native", insertStatement{Database: "db", Table: "t", Columns: []string{"a", "b c", "d"}, Format: "Native"}},
		{"insert into table `my db`.`t` (a) settings async_insert = 0, x = 'y' values", insertStatement{Database: "my db", Table: "t", Columns: []string{"a"}, Settings: "async_insert = 0, x = 'y'", Format: "Values"}},
		{"INSERT INTO t VALUES (1, 'a')", insertStatement{Table: "t", Format: "Values", Direct: true}},
		{"INSERT INTO t SELECT * FROM u", insertStatement{Table: "t", Direct: true}},
		{"INSERT INTO t (a) WITH 1 AS x SELECT x", insertStatement{Table: "t", Columns: []string{"a"}, Direct: true}},
		{"INSERT INTO FUNCTION file('x.csv') SELECT 1", insertStatement{Direct: true}},
	} {
		got, err := parseInsert(c.sql)
		require.NoError(t, err, c.sql)
		require.Equal(t, c.want, got, c.sql)
	}
	for _, bad := range []string{"INSERT t", "INSERT INTO (a)", "INSERT INTO t (a", "INSERT INTO t FORMAT"} {
		_, err := parseInsert(bad)
		require.Error(t, err, bad)
	}
}

func TestParseSetAndUse(t *testing.T) {
	got, err := parseSet("SET a = 1, b = 'x,y', c = [1, 2];")
	require.NoError(t, err)
	require.Equal(t, []sqlSetting{{"a", "1"}, {"b", "'x,y'"}, {"c", "[1, 2]"}}, got)
	_, err = parseSet("SET a")
	require.Error(t, err)
	db, err := parseUse("USE `my db`")
	require.NoError(t, err)
	require.Equal(t, "my db", db)
	_, err = parseUse("USE a b")
	require.Error(t, err)
}

func TestStripDropSync(t *testing.T) {
	require.Equal(t, "DROP TABLE t ", stripDropSync("DROP TABLE t SYNC;"))
	require.Equal(t, "DROP TABLE sync_t", stripDropSync("DROP TABLE sync_t"))
}

func TestParseType(t *testing.T) {
	for _, c := range []struct {
		typ  string
		kind typeKind
		size uint64
	}{
		{"UInt64", kindFixed, 8},
		{"DateTime64(3, 'UTC')", kindFixed, 8},
		{"Enum8('a' = 1, 'b,(' = 2)", kindFixed, 1},
		{"FixedString(16)", kindFixed, 16},
		{"Decimal(38, 2)", kindFixed, 16},
		{"String", kindString, 0},
		{"LowCardinality(Nullable(String))", kindLowCardinality, 0},
		{"Map(String, Array(UInt8))", kindArray, 0},
		{"Tuple(a String, `b c` Nullable(Int8))", kindTuple, 0},
		{"SimpleAggregateFunction(sum, UInt64)", kindFixed, 8},
	} {
		got, err := parseType(c.typ)
		require.NoError(t, err, c.typ)
		require.Equal(t, c.kind, got.kind, c.typ)
		require.Equal(t, c.size, got.size, c.typ)
	}
	_, err := parseType("AggregateFunction(uniq, String)")
	require.ErrorIs(t, err, errUnsupportedType)
}
