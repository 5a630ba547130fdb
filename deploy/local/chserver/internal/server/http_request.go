package server

// The HTTP request: its body without Content-Encoding, the query apart from an INSERT's data, and
// {name:Type} parameters bound from param_name values.

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// decodedBody is the request body without its Content-Encoding.
func decodedBody(r *http.Request) (io.ReadCloser, error) {
	body := r.Body
	if r.Method == http.MethodGet || body == nil {
		return io.NopCloser(strings.NewReader("")), nil
	}
	var dec io.Reader
	var err error
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity", "none":
		return body, nil
	case "gzip", "x-gzip":
		dec, err = gzip.NewReader(body)
	case "deflate":
		dec, err = zlib.NewReader(body)
	case "zstd":
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(body); err == nil {
			dec = zr.IOReadCloser()
		}
	case "lz4":
		dec = lz4.NewReader(body)
	case "bz2", "bzip2":
		dec = bzip2.NewReader(body)
	default:
		return nil, newQueryError(codeNotImplemented, "Content-Encoding %q is not supported by chserver (gzip, deflate, zstd, lz4, bz2 are)", enc)
	}
	if err != nil {
		return nil, newQueryError(codeCannotReadAllData, "read %s request body: %v", r.Header.Get("Content-Encoding"), err)
	}
	return struct {
		io.Reader
		io.Closer
	}{dec, body}, nil
}

// splitHTTPQuery returns the statement and, for an INSERT, its data. The statement is the
// `query` parameter followed by the body, except that the body is an INSERT's data; without
// the parameter, an INSERT's data starts after its FORMAT name or at its VALUES.
func splitHTTPQuery(param string, body io.Reader) (string, io.Reader, error) {
	br := bufio.NewReaderSize(body, 1<<20)
	if param != "" {
		if isInsert(param) {
			if _, err := br.Peek(1); errors.Is(err, io.EOF) {
				// No body: the data, if any, is inline (INSERT ... VALUES (1, 'a')).
				if n, ok := insertDataStart(param); ok && strings.TrimSpace(param[n:]) != "" {
					return param[:n], strings.NewReader(param[n:]), nil
				}
			}
			return param, br, nil
		}
		rest, err := readQuery(br)
		if err != nil {
			return "", nil, err
		}
		if strings.TrimSpace(rest) == "" {
			return param, nil, nil
		}
		return param + "\n" + rest, nil, nil
	}
	head, err := br.Peek(br.Size())
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", nil, newQueryError(codeCannotReadAllData, "read request body: %v", err)
	}
	if isInsert(string(head)) {
		if n, ok := insertDataStart(string(head)); ok {
			sql := string(head[:n])
			if _, err := br.Discard(n); err != nil {
				return "", nil, err
			}
			return sql, br, nil
		}
	}
	q, err := readQuery(br)
	if err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(q) == "" {
		return "", nil, newQueryError(codeSyntaxError, "Empty query: pass it in the `query` URL parameter or the request body")
	}
	return q, nil, nil
}

func readQuery(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxHTTPQuery+1))
	if err != nil {
		return "", newQueryError(codeCannotReadAllData, "read request body: %v", err)
	}
	if len(b) > maxHTTPQuery {
		return "", newQueryError(codeSyntaxError, "query longer than %d bytes", maxHTTPQuery)
	}
	return string(b), nil
}

func isInsert(sql string) bool {
	t, _, ok, err := scan(sql, 0, 0)
	return err == nil && ok && t.is(sql, "INSERT")
}

// insertDataStart finds where an INSERT's inline data starts in text: after `FORMAT name` and
// the blanks up to the end of that line, or at VALUES. It reads the statement's tokens only,
// never the data, which need not be SQL.
func insertDataStart(text string) (int, bool) {
	for i, depth := 0, 0; ; {
		t, next, ok, err := scan(text, i, depth)
		if err != nil || !ok {
			return 0, false
		}
		i, depth = next, t.depth
		if t.kind == tokPunct && strings.IndexByte("([{", text[t.start]) >= 0 {
			depth++
		}
		if t.depth != 0 || t.kind != tokWord {
			continue
		}
		switch {
		case t.is(text, "VALUES"):
			return t.end, true
		case t.is(text, "SELECT"), t.is(text, "WITH"):
			return 0, false
		case t.is(text, "FORMAT"):
			name, end, ok, err := scan(text, i, depth)
			if err != nil || !ok || (name.kind != tokWord && name.kind != tokQuoted) {
				return 0, false
			}
			for end < len(text) && (text[end] == ' ' || text[end] == '\t' || text[end] == '\r') {
				end++
			}
			if end < len(text) && text[end] == '\n' {
				end++
			}
			return end, true
		}
	}
}

// bindParams replaces each {name:Type} placeholder with the value of param_name, as a
// literal of Type (or an identifier for the type Identifier).
func bindParams(sql string, values map[string]string) (string, error) {
	return substituteParams(sql, func(name, typ string) (string, error) {
		v, ok := values[name]
		if !ok {
			return "", newQueryError(codeUnknownQueryParameter, "Substitution `%s` is not set (pass it as param_%s in the URL)", name, name)
		}
		if typ == "Identifier" {
			return quoteIdent(v), nil
		}
		// The value is in the escaped text form, whose escapes are those of SQL strings.
		return "CAST('" + strings.ReplaceAll(v, "'", `\'`) + "' AS " + typ + ")", nil
	})
}

// substituteParams replaces each {name:Type} placeholder of sql with what with returns.
func substituteParams(sql string, with func(name, typ string) (string, error)) (string, error) {
	if !strings.Contains(sql, "{") {
		return sql, nil
	}
	toks, err := lex(sql)
	if err != nil {
		return "", newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	var b strings.Builder
	last := 0
	for i := 0; i+3 < len(toks); i++ {
		open := toks[i]
		if open.kind != tokPunct || sql[open.start] != '{' || toks[i+1].kind != tokWord ||
			toks[i+2].kind != tokPunct || sql[toks[i+2].start] != ':' {
			continue
		}
		j := i + 3
		for j < len(toks) && !(toks[j].kind == tokPunct && sql[toks[j].start] == '}' && toks[j].depth == open.depth) {
			j++
		}
		if j == len(toks) {
			return "", newQueryError(codeSyntaxError, "Syntax error: unterminated query parameter")
		}
		v, err := with(toks[i+1].text(sql), strings.TrimSpace(sql[toks[i+2].end:toks[j].start]))
		if err != nil {
			return "", err
		}
		b.WriteString(sql[last:open.start])
		b.WriteString(v)
		last = toks[j].end
		i = j
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}
