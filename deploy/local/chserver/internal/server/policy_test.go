package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// words lists the tokens of sql as the lexer reads them, strings and comments as "S" and
// nothing.
func words(t *testing.T, sql string) []string {
	t.Helper()
	toks, err := lex(sql)
	require.NoError(t, err, sql)
	var out []string
	for _, tk := range toks {
		if tk.kind == tokString {
			out = append(out, "S")
			continue
		}
		out = append(out, name(sql, tk))
	}
	return out
}

// The lexer reads SQL as ClickHouse's does (checked against chDB 26.5): what ClickHouse runs
// as code is never a string or a comment to the access checks.
func TestLexLikeClickHouse(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want string
	}{
		{"SELECT 1 /* /* */ ' */ , 2", "SELECT 1 , 2"},                                         // nested comments
		{"SELECT 1 // ' comment\n, 2", "SELECT 1 , 2"},                                         // // comments
		{"SELECT 1 # ' comment\n, 2", "SELECT 1 , 2"},                                          // # before a space
		{"SELECT 1 #x 'y'", "SELECT 1 # x S"},                                                  // # before anything else: not a comment
		{"SELECT $$a'b$$, 3", "SELECT S , 3"},                                                  // heredoc
		{"SELECT $x$a'$x$, f($y)", "SELECT S , f ( $y )"},                                      // tagged heredoc; $y a name
		{"SELECT ‘x'’, file('a') --'", "SELECT S , file ( S )"},                                // Unicode-quoted string, no escapes
		{"SELECT “file”('a')", "SELECT file ( S )"},                                            // Unicode-quoted identifier
		{"SELECT file\u00a0('a')", "SELECT file ( S )"},                                        // Unicode blank
		{"SELECT `a``b`, \"c\\\"d\"", "SELECT a`b , c\"d"},                                     // doubled and escaped quotes
		{"SELECT x.1.2, .5, 1e-3, 0x1F, 1_000", "SELECT x . 1 . 2 , .5 , 1e-3 , 0x1F , 1_000"}, // numbers
		{"SELECT 1file", "SELECT 1file"},                                                       // a name starting with a digit
	} {
		require.Equal(t, c.want, strings.Join(words(t, c.sql), " "), c.sql)
	}
	for _, sql := range []string{"SELECT /* /* */", "SELECT ‘x", "SELECT “x", "SELECT 'x"} {
		_, err := lex(sql)
		require.Error(t, err, sql)
	}
}

func testRoles(t *testing.T) Roles {
	t.Helper()
	dir, err := FindRolesDir()
	require.NoError(t, err)
	rs, err := LoadRoles(dir, "vigie")
	require.NoError(t, err)
	return rs
}

func TestLoadRoles(t *testing.T) {
	rs := testRoles(t)
	analyst, ok := rs.Lookup("analyst")
	require.True(t, ok)
	require.True(t, analyst.ReadOnly)
	require.False(t, analyst.systemAll)
	require.True(t, analyst.canReadSystem("system", "tables"))
	require.True(t, analyst.canReadSystem("INFORMATION_SCHEMA", "COLUMNS"))
	require.False(t, analyst.canReadSystem("system", "processes"))
	require.Contains(t, analyst.Grants, "GRANT SELECT ON `vigie`.detections")
	c, ok := analyst.constraint("max_result_rows")
	require.True(t, ok)
	require.Equal(t, []string{"1000000", "1", "1000000"}, []string{c.Value, c.Min, c.Max})
	admin, ok := rs.Lookup("vigie_admin")
	require.True(t, ok)
	require.True(t, admin.systemAll && admin.anyDatabase && !admin.ReadOnly)
	require.Contains(t, admin.Grants, "REVOKE SOURCES ON *.*")
	writer, _ := rs.Lookup("writer")
	require.False(t, writer.anyDatabase || writer.ReadOnly)
	require.Equal(t, []string{"SET ROLE `vigie_analyst`"}, analyst.setup()[:1])
	require.Equal(t, "SET profile = 'vigie_analyst'", analyst.setup()[2])

	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown statement": "CREATE ROLE IF NOT EXISTS r;\nDROP TABLE x;\n",
		"unknown role":      "GRANT SELECT ON db.* TO nobody;\n",
		"no semicolon":      "CREATE ROLE IF NOT EXISTS r",
		"bad profile":       "CREATE ROLE r;\nCREATE SETTINGS PROFILE p SETTINGS readonly TO r;\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "r.sql"), []byte(body), 0o600))
		_, err := LoadRoles(dir, "vigie")
		require.ErrorIs(t, err, ErrRoles, name)
	}
	_, err := LoadRoles(t.TempDir(), "vigie")
	require.ErrorIs(t, err, ErrRoles, "an empty folder")
	_, err = LoadRoles(dir, "bad-name")
	require.ErrorIs(t, err, ErrRoles)
}

func TestCheckStatement(t *testing.T) {
	rs := testRoles(t)
	analyst, _ := rs.Lookup("analyst")
	admin, _ := rs.Lookup("admin")
	tableFunctions := map[string]bool{"file": true, "url": true, "merge": true, "numbers": true, "remote": true, "view": true, "format": true}
	check := func(r *Role, sql string, params map[string]string) error {
		toks, err := lex(sql)
		require.NoError(t, err, sql)
		return r.checkStatement(sql, toks, classify(sql, toks), params, tableFunctions)
	}
	for _, sql := range []string{
		"SELECT count() FROM detections WHERE facility_id = 'F'",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"SELECT * FROM numbers(3) SETTINGS max_execution_time = 10, max_result_rows = 5",
		"SELECT format('{}', 1), name FROM system.tables",
		"SHOW TABLES FROM vigie",
		"SHOW CREATE TABLE vigie.detections",
		"DESC TABLE vigie.detections",
		"SET max_threads = 2",
		"SELECT 1;",
		"SELECT 'file(x)', 'system.processes'",
		"SELECT * FROM detections SETTINGS additional_table_filters = {'detections': 'facility_id = 1'}",
	} {
		require.NoError(t, check(analyst, sql, nil), sql)
	}
	for _, c := range []struct {
		sql    string
		params map[string]string
	}{
		{"INSERT INTO detections VALUES (1)", nil},
		{"SELECT 1; DROP TABLE x", nil},
		{"SELECT 1; SET ROLE vigie_admin", nil},
		{"SELECT * FROM system.processes", nil},
		{"SELECT * FROM {d:Identifier}.{t:Identifier}", map[string]string{"d": "system", "t": "query_log"}},
		{"SELECT * FROM url('x')", nil},
		{"SELECT * FROM MERGE('system', 'p')", nil},
		{"SELECT file('x')", nil},
		{"SHOW PROCESSLIST", nil},
		{"SHOW CREATE USER analyst", nil},
		{"SELECT 1 SETTINGS max_execution_time = 121", nil},
		{"SELECT * FROM (SELECT 1 SETTINGS MAX_EXECUTION_TIME = '1000')", nil},
		{"SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0x3E8)", nil},
		{"SELECT * FROM (SELECT 1 SETTINGS max_result_rows = -1)", nil},
		{"SELECT 1 SETTINGS result_overflow_mode = 'break'", nil},
		{"SELECT 1 SETTINGS format_template_row = '/etc/passwd'", nil},
		{"SELECT 1 INTO OUTFILE 'x'", nil},
	} {
		require.Error(t, check(analyst, c.sql, c.params), c.sql)
	}
	// The administrator: DDL and system tables, never files nor several statements.
	for _, sql := range []string{"CREATE TABLE t (a UInt8) ENGINE = Memory", "SELECT * FROM system.processes", "SHOW PROCESSLIST", "SELECT * FROM merge('db', 't')"} {
		require.NoError(t, check(admin, sql, nil), sql)
	}
	for _, sql := range []string{"SELECT file('x')", "INSERT INTO t FROM INFILE 'x'", "SELECT 1; SELECT 2", "SELECT 1 SETTINGS profile = 'default'", "SELECT * FROM executable('x', 'TSV', 'a String')"} {
		require.Error(t, check(admin, sql, nil), sql)
	}
	require.Error(t, admin.checkSettings([]sqlSetting{{Key: "readonly", Value: "'1'"}}, true), "a session is never made read-only")
	require.NoError(t, admin.checkSettings([]sqlSetting{{Key: "readonly", Value: "'1'"}}, false), "a read may be")
	require.Error(t, analyst.checkDatabase("system"))
	require.Error(t, analyst.checkDatabase("INFORMATION_SCHEMA"))
	require.NoError(t, admin.checkDatabase("system"))
}

func TestUsers(t *testing.T) {
	users, err := ParseUsers("admin:a:b:admin, analyst:pw:analyst")
	require.NoError(t, err)
	require.Equal(t, map[string]User{"admin": {Password: "a:b", Role: "admin"}, "analyst": {Password: "pw", Role: "analyst"}}, users)
	for _, s := range []string{"default:", "default::admin", "x:pw:", "bad name:pw:admin", "a:pw:admin,a:pw2:admin"} {
		_, err := ParseUsers(s)
		require.ErrorIs(t, err, ErrUsers, s)
		require.NotContains(t, err.Error(), "pw2", "no password in the error")
	}
	_, err = ParseUsers("default::admin")
	require.ErrorContains(t, err, "empty password")

	path := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(path, []byte("# users\nadmin:s3cret:admin\n\nwriter:w:writer\n"), 0o600))
	users, err = ReadUsersFile(path)
	require.NoError(t, err)
	require.Len(t, users, 2)
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = ReadUsersFile(path)
	require.ErrorContains(t, err, "chmod 600")
	_, err = ReadUsersFile(path + ".missing")
	require.ErrorIs(t, err, ErrUsers)

	cfg := DefaultConfig()
	cfg.Roles = testRoles(t)
	require.ErrorContains(t, cfg.Validate(), "at least one user")
	cfg.Users = map[string]User{"default": {Role: "admin"}}
	require.ErrorContains(t, cfg.Validate(), "empty password")
	cfg.Users = map[string]User{"x": {Password: "p", Role: "superuser"}}
	require.ErrorContains(t, cfg.Validate(), "superuser")
	cfg.Users = map[string]User{"x": {Password: "p", Role: "writer"}}
	require.NoError(t, cfg.Validate())
}
