package server

// A lexer that knows ClickHouse SQL's quotes, comments and nesting well enough to find statement
// boundaries and keywords.

import (
	"errors"
	"strings"
)

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
