package server

// The access rules the engine cannot enforce itself. chDB runs every statement as one user,
// with the privileges of the role set on its session (Session.SetRole): grants stop writes,
// DDL, table functions and engines that reach outside (CREATE TEMPORARY TABLE, SOURCES), and
// the role's profile bounds its settings. What chDB does not check is refused here, before a
// statement reaches the engine, from its tokens (lex.go reads SQL as ClickHouse does):
//
//   - for everyone: one statement per query (chDB runs every statement of "a; b", SET ROLE
//     included); no INTO OUTFILE, FROM INFILE (chDB reads and writes them as its client would,
//     anywhere) nor file() (chDB's function reads any path: user_files_path does not bind a
//     clickhouse-local engine), nor executable() (which no grant guards); no setting that reads or writes files or reaches a URL
//     (deniedSettings), nor profile; readonly only for one read (SETTINGS, the query's own
//     settings), never for a session (SET) or a statement run on the session's settings;
//   - for a role without every system table: only the system tables it is granted (chDB
//     does not check SELECT on the system database), no current database system or
//     information_schema, only the table functions of allowedTableFunctions, only SHOW forms
//     that list schema;
//   - for a read-only role (readonly in its profile): reads only; and the bounds of its
//     profile on settings in every SETTINGS clause (chDB checks only the outermost one).

import (
	"sort"
	"strconv"
	"strings"
)

// Error codes of refusals.
const (
	codeAccessDenied               = 497 // ACCESS_DENIED
	codeReadonly                   = 164 // READONLY
	codeSettingConstraintViolation = 452 // SETTING_CONSTRAINT_VIOLATION
)

// deniedSettings are settings no client may set, with why.
var deniedSettings = map[string]string{
	"format_schema":                          "reads a schema file",
	"format_schema_source":                   "reads a schema file",
	"format_template_resultset":              "reads a template file",
	"format_template_row":                    "reads a template file",
	"output_format_schema":                   "writes a schema file",
	"input_format_record_errors_file_path":   "writes a file",
	"rename_files_after_processing":          "renames files",
	"into_outfile_create_parent_directories": "creates folders",
	"format_avro_schema_registry_url":        "reaches a URL",
	"url_base":                               "reaches URLs",
	"profile":                                "changes the session's settings profile",
}

// allowedTableFunctions are the table functions a role without every system table may use:
// they read nothing but their arguments. Any other (file, url, remote, s3, executable,
// mysql, merge, loop, dictionary, cluster, … and whatever a later engine adds) is refused:
// an allow-list, so that a new table function is closed until someone opens it.
var allowedTableFunctions = map[string]bool{
	"numbers": true, "numbers_mt": true, "zeros": true, "zeros_mt": true,
	"generate_series": true, "generateseries": true, "values": true, "null": true,
	"view": true, "format": true, "generaterandom": true,
}

// readStatements are the first keywords of the statements a read-only role may run (and HTTP
// GET carries).
var readStatements = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXISTS": true, "EXPLAIN": true,
}

// schemaShows are the SHOW forms that list schema (a role without every system table may run
// only these): not SHOW PROCESSLIST, GRANTS, USERS, ACCESS, CLUSTERS, …
var schemaShows = map[string]bool{
	"DATABASES": true, "TABLES": true, "COLUMNS": true, "FIELDS": true, "DICTIONARIES": true,
	"CREATE": true, "INDEX": true, "INDEXES": true, "INDICES": true, "KEYS": true,
	"FUNCTIONS": true, "SETTING": true, "SETTINGS": true, "CHANGED": true, "ENGINES": true,
	"FULL": true, "EXTENDED": true, "TEMPORARY": true, "TERSE": true,
}

// accessCreates are the SHOW CREATE forms of access entities.
var accessCreates = map[string]bool{
	"USER": true, "ROLE": true, "ROW": true, "POLICY": true, "QUOTA": true, "SETTINGS": true,
	"PROFILE": true, "MASKING": true, "NAMED": true, "USERS": true, "ROLES": true, "POLICIES": true,
	"QUOTAS": true, "PROFILES": true,
}

func denied(format string, args ...any) error {
	return newQueryError(codeAccessDenied, "Access denied: "+format, args...)
}

// isRead reports whether a statement only reads: what a read-only role and HTTP GET may run.
func isRead(sql string, toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[0]
	return t.kind == tokPunct && sql[t.start] == '(' || t.kind == tokWord && readStatements[strings.ToUpper(t.text(sql))]
}

// name is the name a word or quoted token stands for.
func name(sql string, t token) string {
	if t.kind == tokQuoted {
		return unquoteIdent(sql, t)
	}
	return t.text(sql)
}

// checkStatement refuses what role may not run of sql (lexed as toks, of kind kind), with
// params, the values of its {name:Type} placeholders. tableFunctions are the engine's table
// functions (lower case).
func (r *Role) checkStatement(sql string, toks []token, kind statementKind, params map[string]string, tableFunctions map[string]bool) error {
	if strings.Contains(sql, "{") {
		// {db:Identifier}.{t:Identifier} names a table: the checks read the names it will have.
		if expanded, err := expandIdentifiers(sql, params); err == nil {
			if etoks, err := lex(expanded); err == nil {
				sql, toks = expanded, etoks
			}
		}
	}
	for i, t := range toks {
		if t.kind == tokPunct && sql[t.start] == ';' && t.depth == 0 {
			for _, u := range toks[i+1:] {
				if !(u.kind == tokPunct && sql[u.start] == ';') {
					return newQueryError(codeSyntaxError, "Syntax error: multi-statements are not allowed: send one statement per query")
				}
			}
		}
	}
	readOnly := r.ReadOnly
	restricted := !r.systemAll
	if readOnly && !isRead(sql, toks) && kind != stmtSet && kind != stmtUse {
		return newQueryError(codeReadonly, "%s: Cannot execute query in readonly mode: role %s reads only (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN)", r.Name, r.Name)
	}
	if restricted && len(toks) > 1 && toks[0].is(sql, "SHOW") {
		next := strings.ToUpper(toks[1].text(sql))
		if !schemaShows[next] || next == "CREATE" && len(toks) > 2 && accessCreates[strings.ToUpper(toks[2].text(sql))] {
			return denied("role %s may not run SHOW %s (schema only: SHOW DATABASES, TABLES, COLUMNS, CREATE TABLE, …)", r.Name, next)
		}
	}
	for i, t := range toks {
		if t.kind != tokWord && t.kind != tokQuoted {
			continue
		}
		n := name(sql, t)
		if t.kind == tokWord && (strings.EqualFold(n, "INFILE") || strings.EqualFold(n, "OUTFILE")) {
			return denied("INTO OUTFILE and FROM INFILE would make the server read or write its own files")
		}
		call := i+1 < len(toks) && toks[i+1].kind == tokPunct && sql[toks[i+1].start] == '('
		if call && strings.EqualFold(n, "file") {
			return denied("file() reads the server's files")
		}
		if call && strings.EqualFold(n, "executable") {
			return denied("executable() runs programs on the server")
		}
		if call && restricted && tableFunctions[strings.ToLower(n)] && !allowedTableFunctions[strings.ToLower(n)] {
			return denied("role %s may not use the table function %s (only numbers, zeros, values, view, generateRandom, generate_series, null, format)", r.Name, n)
		}
		dot := i+2 < len(toks) && toks[i+1].kind == tokPunct && sql[toks[i+1].start] == '.' &&
			(toks[i+2].kind == tokWord || toks[i+2].kind == tokQuoted)
		if restricted && dot && (strings.EqualFold(n, "system") || strings.EqualFold(n, "information_schema")) {
			if !r.canReadSystem(n, name(sql, toks[i+2])) {
				return denied("role %s may not read %s.%s (it may read %s)", r.Name, n, name(sql, toks[i+2]), r.systemList())
			}
		}
		if t.kind == tokWord && isSettingsClause(sql, toks, i) {
			if err := r.checkSettingsClause(sql, toks[i+1:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// systemList names the system tables the role may read, for messages.
func (r *Role) systemList() string {
	var out []string
	for t := range r.systemTables {
		out = append(out, t)
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// checkDatabase refuses a current database through which a role could name system tables
// without qualifying them.
func (r *Role) checkDatabase(db string) error {
	if !r.systemAll && (strings.EqualFold(db, "system") || strings.EqualFold(db, "information_schema")) {
		return denied("role %s may not use %s as its current database: name the tables it may read as %s.table", r.Name, db, db)
	}
	return nil
}

// checkSettingsClause checks the name = value items of a SETTINGS clause (toks starts after
// the keyword).
func (r *Role) checkSettingsClause(sql string, toks []token) error {
	d := toks[0].depth
	for i := 0; i+2 < len(toks); {
		if toks[i].kind != tokWord || toks[i+1].kind != tokPunct || sql[toks[i+1].start] != '=' {
			return nil
		}
		key := toks[i].text(sql)
		j := i + 2
		sign := ""
		if toks[j].kind == tokPunct && (sql[toks[j].start] == '-' || sql[toks[j].start] == '+') && j+1 < len(toks) {
			sign = sql[toks[j].start : toks[j].start+1]
			j++
		}
		value := toks[j]
		end := j + 1
		for end < len(toks) && toks[end].depth > d {
			end++
		}
		if end > j+1 && end < len(toks) {
			end++ // the closing bracket of a map or array value
		}
		v := sign + sql[value.start:toks[end-1].end]
		if value.kind == tokString {
			v = literal(sql, value)
		}
		if err := r.checkSetting(key, v, false); err != nil {
			return err
		}
		if end >= len(toks) || toks[end].kind != tokPunct || sql[toks[end].start] != ',' || toks[end].depth != d {
			return nil
		}
		i = end + 1
	}
	return nil
}

// checkSetting refuses a setting no client may set, or a value outside the role's bounds;
// onSession is set when the setting would be set on the engine's session, shared by clients
// (SET, and the settings of a statement other than a read).
func (r *Role) checkSetting(key, value string, onSession bool) error {
	if why, ok := deniedSettings[strings.ToLower(key)]; ok {
		return denied("setting %s %s: no client may set it", key, why)
	}
	if onSession && strings.EqualFold(key, "readonly") {
		return denied("setting readonly is accepted with a read only (SELECT … SETTINGS readonly = 1, or with that query's settings): a session of the server cannot be made read-only")
	}
	c, ok := r.constraint(key)
	if !ok {
		return nil
	}
	violation := func(what string) error {
		return newQueryError(codeSettingConstraintViolation, "Setting %s %s for role %s (value %q)", key, what, r.Name, value)
	}
	if c.Const {
		if value != c.Value {
			return violation("should not be changed")
		}
		return nil
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(strings.Trim(value, "'"), "_", ""), 64)
	if err != nil {
		return violation("must be a number")
	}
	if c.Min != "" {
		if lo, err := strconv.ParseFloat(c.Min, 64); err == nil && f < lo {
			return violation("shouldn't be less than " + c.Min)
		}
	}
	if c.Max != "" {
		if hi, err := strconv.ParseFloat(c.Max, 64); err == nil && f > hi {
			return violation("shouldn't be greater than " + c.Max)
		}
	}
	return nil
}

// checkSettings checks settings a client sends beside its statement (the query packet, URL
// parameters, SET), onSession as in checkSetting.
func (r *Role) checkSettings(settings []sqlSetting, onSession bool) error {
	for _, s := range settings {
		v := s.Value
		if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		if err := r.checkSetting(s.Key, v, onSession); err != nil {
			return err
		}
	}
	return nil
}

// expandIdentifiers replaces each {name:Identifier} placeholder by its value as a quoted
// identifier, and every other placeholder by an empty string literal: the statement as the
// access checks must read it.
func expandIdentifiers(sql string, values map[string]string) (string, error) {
	return substituteParams(sql, func(name, typ string) (string, error) {
		if typ == "Identifier" {
			return quoteIdent(values[name]), nil
		}
		return "''", nil
	})
}
