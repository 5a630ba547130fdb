package server

import (
	"strings"
)

// This file reads just enough SQL to route a client's statement and to rewrite it for chDB:
// the output format is always Native whatever FORMAT the client wrote, and per-query
// settings become a SETTINGS clause of the statement itself, so they cannot leak into the
// next statement or another connection.

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
	if strings.HasPrefix(s, leftDoubleQuote) { // “name”: no escapes
		return s[len(leftDoubleQuote) : len(s)-len(rightDoubleQuote)]
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
