package server

// A lexer that follows ClickHouse's own (src/Parsers/Lexer.cpp) well enough to find statement
// boundaries and keywords, and never to see a string or a comment where ClickHouse sees code:
// the access checks (policy.go) rely on it. Like ClickHouse's, it knows nested /* */ comments,
// -- and // comments, # comments (before a space or !), heredocs ($tag$…$tag$), and the
// Unicode quotes ‘string’ and “identifier”; outside quotes, a non-ASCII byte is a blank
// (ClickHouse skips Unicode spaces and refuses other such bytes).

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
	prev := prevNone
	for i, depth := 0, 0; ; {
		t, next, ok, err := scanAfter(sql, i, depth, prev)
		if err != nil {
			return nil, err
		}
		if !ok {
			return toks, nil
		}
		toks = append(toks, t)
		i, depth, prev = next, t.depth, prevOf(sql, t)
		if t.kind == tokPunct {
			switch sql[t.start] {
			case '(', '[', '{':
				depth++
			}
		}
	}
}

// prevKind is what the previous token was, where ClickHouse's lexer depends on it: after a
// dot, a number is digits only (x.1.1 is x . 1 . 1); after an operand, a dot before a digit is
// a dot (t.1), elsewhere it starts a number (.5).
type prevKind uint8

const (
	prevNone prevKind = iota
	prevDot
	prevOperand
)

func prevOf(sql string, t token) prevKind {
	switch {
	case t.kind == tokPunct && sql[t.start] == '.':
		return prevDot
	case t.kind == tokWord, t.kind == tokQuoted, t.kind == tokNumber,
		t.kind == tokPunct && (sql[t.start] == ')' || sql[t.start] == ']'):
		return prevOperand
	}
	return prevNone
}

// scan returns the first token at or after offset i, given the nesting depth before it, and
// the offset after it; ok is false at the end of sql. It reads no further than that token, so
// an INSERT's statement can be read without its data.
func scan(sql string, i, depth int) (t token, next int, ok bool, err error) {
	return scanAfter(sql, i, depth, prevNone)
}

// Unicode quotes, as ClickHouse reads them: ‘…’ is a string, “…” an identifier, without escapes.
const (
	leftSingleQuote  = "\u2018"
	rightSingleQuote = "\u2019"
	leftDoubleQuote  = "\u201c"
	rightDoubleQuote = "\u201d"
)

// scanAfter is scan after a token of kind prev.
func scanAfter(sql string, i, depth int, prev prevKind) (t token, next int, ok bool, err error) {
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c >= 0x80 && !strings.HasPrefix(sql[i:], leftSingleQuote) && !strings.HasPrefix(sql[i:], leftDoubleQuote):
			i++
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '/' && strings.HasPrefix(sql[i:], "//"),
			c == '#' && i+1 < len(sql) && (sql[i+1] == ' ' || sql[i+1] == '!'):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				return token{}, len(sql), false, nil // a comment to the end
			}
			i += end + 1
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end, ok := commentEnd(sql, i)
			if !ok {
				return token{}, i, false, errUnterminated
			}
			i = end
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
		case c >= 0x80: // a left Unicode quote
			kind, closing := tokString, rightSingleQuote
			if strings.HasPrefix(sql[i:], leftDoubleQuote) {
				kind, closing = tokQuoted, rightDoubleQuote
			}
			end := strings.Index(sql[i+3:], closing)
			if end < 0 {
				return token{}, i, false, errUnterminated
			}
			j := i + 3 + end + len(closing)
			return token{kind: kind, start: i, end: j, depth: depth}, j, true, nil
		case c == '$':
			if j := strings.IndexByte(sql[i+1:], '$'); j >= 0 {
				tag := sql[i : i+j+2]
				if end := strings.Index(sql[i+len(tag):], tag); end >= 0 {
					j := i + len(tag) + end + len(tag)
					return token{kind: tokString, start: i, end: j, depth: depth}, j, true, nil
				}
			}
			if i+1 == len(sql) || !isWordByte(sql[i+1]) {
				return token{kind: tokPunct, start: i, end: i + 1, depth: depth}, i + 1, true, nil
			}
			return word(sql, i, depth)
		case isWordByte(c) && !(c >= '0' && c <= '9'):
			return word(sql, i, depth)
		case c >= '0' && c <= '9', c == '.' && prev != prevOperand && prev != prevDot && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := number(sql, i, prev == prevDot)
			if j < len(sql) && isWordByte(sql[j]) { // 1identifier is a name; 1.5x is wrong, a name here
				for j < len(sql) && isWordByte(sql[j]) {
					j++
				}
				kind := tokWord
				if strings.ContainsAny(sql[i:j], ".+-") {
					kind = tokNumber
				}
				return token{kind: kind, start: i, end: j, depth: depth}, j, true, nil
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

func word(sql string, i, depth int) (token, int, bool, error) {
	j := i + 1
	for j < len(sql) && isWordByte(sql[j]) {
		j++
	}
	return token{kind: tokWord, start: i, end: j, depth: depth}, j, true, nil
}

// commentEnd is the offset after the /* comment at i, with nested /* */ as ClickHouse reads
// them; ok is false when it does not end.
func commentEnd(sql string, i int) (int, bool) {
	level := 0
	for i+1 < len(sql) {
		switch {
		case sql[i] == '/' && sql[i+1] == '*':
			level++
			i += 2
		case sql[i] == '*' && sql[i+1] == '/':
			level--
			i += 2
			if level == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return 0, false
}

// number is the offset after the number at i, read as ClickHouse's lexer reads it: after a
// dot digits only, else digits (0x hexadecimal, 0b binary, _ between digits), a fraction and
// an exponent.
func number(sql string, i int, afterDot bool) int {
	digits := func(j int, hex bool) int {
		for j < len(sql) && (isDigit(sql[j], hex) || sql[j] == '_' && j+1 < len(sql) && isDigit(sql[j+1], hex) && j > 0 && isDigit(sql[j-1], hex)) {
			j++
		}
		return j
	}
	if afterDot {
		return digits(i, false)
	}
	hex := false
	j := i
	if sql[j] == '0' && j+2 < len(sql) {
		switch {
		case (sql[j+1] == 'x' || sql[j+1] == 'X') && isDigit(sql[j+2], true):
			hex, j = true, j+2
		case (sql[j+1] == 'b' || sql[j+1] == 'B') && (sql[j+2] == '0' || sql[j+2] == '1'):
			j += 2
		}
	}
	j = digits(j, hex)
	if j < len(sql) && sql[j] == '.' {
		j = digits(j+1, hex)
	}
	if j+1 < len(sql) && (!hex && (sql[j] == 'e' || sql[j] == 'E') || hex && (sql[j] == 'p' || sql[j] == 'P')) {
		j++
		if j+1 < len(sql) && (sql[j] == '-' || sql[j] == '+') {
			j++
		}
		j = digits(j, false)
	}
	return j
}

func isDigit(c byte, hex bool) bool {
	return c >= '0' && c <= '9' || hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
