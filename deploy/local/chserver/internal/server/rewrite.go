package server

import (
	"errors"
	"fmt"
	"strings"
)

// This file reads just enough SQL to route a client's statement and to rewrite it for chDB:
// the output format is always Native whatever FORMAT the client wrote, and per-query
// settings become a SETTINGS clause of the statement itself, so they cannot leak into the
// next statement or another connection.

type tokenKind uint8

const (
	tokWord   tokenKind = iota // keyword or bare identifier
	tokQuoted                  // `identifier` or "identifier"
	tokString                  // 'literal'
	tokNumber
	tokPunct
)

type token struct {
	kind       tokenKind
	start, end int
	depth      int // depth of (), [] and {}
}

func (t token) text(sql string) string { return sql[t.start:t.end] }

// is reports whether t is the keyword kw (case-insensitive).
func (t token) is(sql, kw string) bool {
	return t.kind == tokWord && strings.EqualFold(sql[t.start:t.end], kw)
}

var errUnterminated = errors.New("unterminated quote or comment")

// lex splits sql into tokens, dropping spaces and comments.
func lex(sql string) ([]token, error) {
	var toks []token
	for i, depth := 0, 0; ; {
		t, next, ok, err := scan(sql, i, depth)
		if err != nil {
			return nil, err
		}
		if !ok {
			return toks, nil
		}
		toks = append(toks, t)
		i, depth = next, t.depth
		if t.kind == tokPunct {
			switch sql[t.start] {
			case '(', '[', '{':
				depth++
			}
		}
	}
}

// scan returns the first token at or after offset i, given the nesting depth before it, and
// the offset after it; ok is false at the end of sql. It reads no further than that token, so
// an INSERT's statement can be read without its data.
func scan(sql string, i, depth int) (t token, next int, ok bool, err error) {
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				return token{}, i, false, nil // a comment to the end
			}
			i += end + 1
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return token{}, i, false, errUnterminated
			}
			i += end + 4
		case c == '\'' || c == '`' || c == '"':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '\\' {
					j++
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c { // doubled quote
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				return token{}, i, false, errUnterminated
			}
			kind := tokQuoted
			if c == '\'' {
				kind = tokString
			}
			return token{kind: kind, start: i, end: j + 1, depth: depth}, j + 1, true, nil
		case isWordByte(c) && !(c >= '0' && c <= '9'):
			j := i + 1
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
			return token{kind: tokWord, start: i, end: j, depth: depth}, j, true, nil
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(sql) && (isWordByte(sql[j]) || sql[j] == '.') {
				j++
			}
			return token{kind: tokNumber, start: i, end: j, depth: depth}, j, true, nil
		default:
			if c == ')' || c == ']' || c == '}' {
				depth--
			}
			return token{kind: tokPunct, start: i, end: i + 1, depth: depth}, i + 1, true, nil
		}
	}
	return token{}, i, false, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// statementKind routes a statement.
type statementKind uint8

const (
	stmtOther  statementKind = iota // DDL and the like: run, no result expected
	stmtSelect                      // returns rows
	stmtInsert
	stmtSet
	stmtUse
)

func classify(sql string, toks []token) statementKind {
	if len(toks) == 0 {
		return stmtOther
	}
	t := toks[0]
	if t.kind == tokPunct && sql[t.start] == '(' {
		return stmtSelect
	}
	if t.kind != tokWord {
		return stmtOther
	}
	switch strings.ToUpper(t.text(sql)) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "VALUES", "CHECK":
		return stmtSelect
	case "INSERT":
		return stmtInsert
	case "SET":
		return stmtSet
	case "USE":
		return stmtUse
	}
	return stmtOther
}

// trimStatement drops trailing semicolons.
func trimStatement(sql string, toks []token) (string, []token) {
	for len(toks) > 0 && toks[len(toks)-1].kind == tokPunct && sql[toks[len(toks)-1].start] == ';' {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return "", nil
	}
	return sql[:toks[len(toks)-1].end], toks
}

// rewriteSelect removes a top-level FORMAT clause and adds the settings to the statement's
// SETTINGS clause.
func rewriteSelect(sql string, settings []sqlSetting) (string, error) {
	sql, _, err := rewriteSelectFormat(sql, settings)
	return sql, err
}

// rewriteSelectFormat is rewriteSelect that also returns the name of the FORMAT clause it
// removed ("" when there was none).
func rewriteSelectFormat(sql string, settings []sqlSetting) (string, string, error) {
	toks, err := lex(sql)
	if err != nil {
		return "", "", err
	}
	sql, toks = trimStatement(sql, toks)
	format := ""
	for i := len(toks) - 2; i >= 0; i-- {
		t := toks[i]
		if t.depth == 0 && t.is(sql, "FORMAT") && (toks[i+1].kind == tokWord || toks[i+1].kind == tokQuoted) {
			format = unquoteIdent(sql, toks[i+1])
			cut := toks[i+1].end
			sql = strings.TrimRight(sql[:t.start], " \t\r\n") + sql[cut:]
			toks, err = lex(sql)
			if err != nil {
				return "", "", err
			}
			break
		}
	}
	if len(settings) == 0 {
		return sql, format, nil
	}
	hasSettings := false
	for i, t := range toks {
		if t.depth != 0 || t.kind != tokWord {
			continue
		}
		switch {
		case isSettingsClause(sql, toks, i):
			hasSettings = true
		case t.is(sql, "SELECT"), t.is(sql, "UNION"), t.is(sql, "EXCEPT"), t.is(sql, "INTERSECT"):
			hasSettings = false
		}
	}
	if hasSettings {
		return sql + ", " + renderSettings(settings), format, nil
	}
	return sql + " SETTINGS " + renderSettings(settings), format, nil
}

// isSettingsClause reports whether toks[i] starts a SETTINGS clause (SETTINGS name = ...),
// rather than being a name such as system.settings.
func isSettingsClause(sql string, toks []token, i int) bool {
	if !toks[i].is(sql, "SETTINGS") || i+2 >= len(toks) {
		return false
	}
	if i > 0 && toks[i-1].kind == tokPunct && sql[toks[i-1].start] == '.' {
		return false
	}
	return toks[i+1].kind == tokWord && toks[i+2].kind == tokPunct && sql[toks[i+2].start] == '='
}

// sqlSetting is a setting with its value as an SQL literal.
type sqlSetting struct {
	Key   string
	Value string
}

func renderSettings(settings []sqlSetting) string {
	var b strings.Builder
	for i, s := range settings {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Key)
		b.WriteString(" = ")
		b.WriteString(s.Value)
	}
	return b.String()
}

// quoteString renders s as an SQL string literal.
func quoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// quoteIdent renders name as a quoted identifier.
func quoteIdent(name string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(name) + "`"
}

// unquoteIdent returns the name an identifier token stands for.
func unquoteIdent(sql string, t token) string {
	s := t.text(sql)
	if t.kind != tokQuoted {
		return s
	}
	q := s[0]
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		} else if s[i] == q && i+1 < len(s) && s[i+1] == q {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func validSettingName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isWordByte(k[i]) && k[i] != '.' {
			return false
		}
	}
	return true
}

// insertStatement is what the server needs to know of an INSERT.
type insertStatement struct {
	Database string   // empty: the connection's database
	Table    string   // unquoted
	Columns  []string // unquoted, as the client listed them; nil when no list
	Settings string   // the assignments of its SETTINGS clause, if any
	Format   string   // FORMAT name; "Values" for VALUES
	// Direct is set when the statement carries its own data (INSERT ... SELECT, inline
	// VALUES or inline formatted data, INSERT INTO FUNCTION): it is run as it is.
	Direct bool
}

// quotedTable is the statement's table as SQL: [`db`.]`table`.
func (st insertStatement) quotedTable() string {
	if st.Database == "" {
		return quoteIdent(st.Table)
	}
	return quoteIdent(st.Database) + "." + quoteIdent(st.Table)
}

// parseInsert reads INSERT INTO [TABLE] [db.]table [(cols)] [SETTINGS ...] [FORMAT f | VALUES | SELECT ...].
func parseInsert(sql string) (insertStatement, error) {
	var st insertStatement
	toks, err := lex(sql)
	if err != nil {
		return st, err
	}
	sql, toks = trimStatement(sql, toks)
	bad := func(what string) (insertStatement, error) {
		return st, fmt.Errorf("syntax error in INSERT: %s", what)
	}
	i := 0
	next := func() (token, bool) {
		if i >= len(toks) {
			return token{}, false
		}
		i++
		return toks[i-1], true
	}
	if t, ok := next(); !ok || !t.is(sql, "INSERT") {
		return bad("expected INSERT")
	}
	if t, ok := next(); !ok || !t.is(sql, "INTO") {
		return bad("expected INTO")
	}
	t, ok := next()
	if ok && (t.is(sql, "FUNCTION")) {
		st.Direct = true
		return st, nil
	}
	if ok && t.is(sql, "TABLE") {
		t, ok = next()
	}
	if !ok || (t.kind != tokWord && t.kind != tokQuoted) {
		return bad("expected a table name")
	}
	st.Table = unquoteIdent(sql, t)
	if i+1 < len(toks) && toks[i].kind == tokPunct && sql[toks[i].start] == '.' {
		i++
		t, _ = next()
		if t.kind != tokWord && t.kind != tokQuoted {
			return bad("expected a table name after the database")
		}
		st.Database, st.Table = st.Table, unquoteIdent(sql, t)
	}
	if i < len(toks) && toks[i].kind == tokPunct && sql[toks[i].start] == '(' {
		i++
		st.Columns = []string{}
		for {
			t, ok := next()
			if !ok {
				return bad("unterminated column list")
			}
			if t.kind == tokPunct && sql[t.start] == ')' && t.depth == 0 {
				break
			}
			if t.kind == tokPunct && sql[t.start] == ',' {
				continue
			}
			if t.kind != tokWord && t.kind != tokQuoted {
				return bad("unexpected " + t.text(sql) + " in the column list")
			}
			st.Columns = append(st.Columns, unquoteIdent(sql, t))
		}
	}
	if i < len(toks) && isSettingsClause(sql, toks, i) {
		start := i + 1
		for i < len(toks) && !(toks[i].depth == 0 && (toks[i].is(sql, "FORMAT") || toks[i].is(sql, "VALUES") || toks[i].is(sql, "SELECT") || toks[i].is(sql, "WITH"))) {
			i++
		}
		if start < i {
			st.Settings = sql[toks[start].start:toks[i-1].end]
		}
	}
	t, ok = next()
	switch {
	case !ok:
		st.Format = "Values"
	case t.is(sql, "VALUES"):
		st.Format = "Values"
		st.Direct = i < len(toks)
	case t.is(sql, "FORMAT"):
		f, ok := next()
		if !ok {
			return bad("expected a format name")
		}
		st.Format = unquoteIdent(sql, f)
		st.Direct = i < len(toks)
	case t.is(sql, "SELECT"), t.is(sql, "WITH"), t.kind == tokPunct && sql[t.start] == '(':
		st.Direct = true
	default:
		return bad("unexpected " + t.text(sql))
	}
	return st, nil
}

// parseSet reads SET a = 1, b = 'x'.
func parseSet(sql string) ([]sqlSetting, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	sql, toks = trimStatement(sql, toks)
	if len(toks) < 4 || !toks[0].is(sql, "SET") {
		return nil, errors.New("syntax error in SET")
	}
	var out []sqlSetting
	i := 1
	for i < len(toks) {
		if i+2 >= len(toks) || toks[i].kind != tokWord || sql[toks[i+1].start] != '=' {
			return nil, errors.New("syntax error in SET: expected name = value")
		}
		key := toks[i].text(sql)
		j := i + 2
		for j < len(toks) && !(toks[j].depth == 0 && toks[j].kind == tokPunct && sql[toks[j].start] == ',') {
			j++
		}
		if j == i+2 {
			return nil, errors.New("syntax error in SET: missing value")
		}
		out = append(out, sqlSetting{Key: key, Value: sql[toks[i+2].start:toks[j-1].end]})
		i = j + 1
	}
	return out, nil
}

// parseUse reads USE db.
func parseUse(sql string) (string, error) {
	toks, err := lex(sql)
	if err != nil {
		return "", err
	}
	sql, toks = trimStatement(sql, toks)
	if len(toks) != 2 || (toks[1].kind != tokWord && toks[1].kind != tokQuoted) {
		return "", errors.New("syntax error in USE: expected a database name")
	}
	return unquoteIdent(sql, toks[1]), nil
}
