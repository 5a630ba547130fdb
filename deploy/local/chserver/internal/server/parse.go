package server

// INSERT, SET and USE statements parsed into what the server needs to run them on chDB.

import (
	"errors"
	"fmt"
)

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
