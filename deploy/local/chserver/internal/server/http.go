package server

// This file serves ClickHouse's HTTP interface (port 8123 on a real server) on the same engine
// as the native protocol, for clients that speak HTTP: curl, clickhouse-connect, clickhouse-go
// with Protocol HTTP, Grafana's plugin in HTTP mode. Queries come in the `query` URL parameter
// or the body (an INSERT's data follows its query), other URL parameters are settings (and
// `param_name` values for `{name:Type}` placeholders), the result is written in the query's
// FORMAT, `default_format`, or TabSeparated. Errors answer an HTTP error status with the
// X-ClickHouse-Exception-Code header and ClickHouse's message. No sessions: SET and USE are
// refused, settings and the database travel with each request.

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

const (
	codeNoDataToInsert        = 108
	codeUnknownQueryParameter = 456
	codeUnknownFormat         = 73
	codeCannotReadAllData     = 33

	// maxHTTPQuery bounds a query read from the body (its data excepted).
	maxHTTPQuery = 64 << 20
)

// httpParams are URL parameters of the HTTP interface that are not settings.
var httpParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "user": true, "password": true,
	"query_id": true, "session_id": true, "session_timeout": true, "session_check": true,
	"compress": true, "decompress": true, "quota_key": true, "buffer_size": true,
	"wait_end_of_query": true, "stacktrace": true, "role": true, "client_protocol_version": true,
}

// ServeHTTPClients answers ClickHouse's HTTP interface on ln until ctx is done, then lets
// running requests finish for ShutdownTimeout.
func (s *Server) ServeHTTPClients(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.handleHTTP),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	})
	defer stop()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// httpRequest is one HTTP query, read from the request.
type httpRequest struct {
	w        http.ResponseWriter
	r        *http.Request
	log      *zap.Logger
	id       string
	database string
	format   string
	settings []sqlSetting
	// revision is the client_protocol_version parameter: Native output then follows that
	// protocol revision's block layout (clickhouse-go over HTTP sends it).
	revision uint64
	types    typeCache
}

func (s *Server) handleHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ping", "/replicas_status":
		_, _ = io.WriteString(w, "Ok.\n")
		return
	case "/", "/query":
	default:
		http.NotFound(w, r)
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodGet && !params.Has("query") {
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	h := &httpRequest{w: w, r: r, id: params.Get("query_id")}
	if h.id == "" {
		h.id = fmt.Sprintf("chserver-http-%d", s.seq.Add(1))
	}
	h.log = s.log.With(zap.String("remote", r.RemoteAddr), zap.String("query_id", h.id))
	start := time.Now()
	err := s.serveHTTPQuery(h, params)
	if err != nil {
		h.fail(err)
	}
	h.log.Debug("http query", zap.Duration("elapsed", time.Since(start)), zap.Error(err))
}

func (s *Server) serveHTTPQuery(h *httpRequest, params map[string][]string) error {
	r := h.r
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	user, password := get("user"), get("password")
	if u := r.Header.Get("X-ClickHouse-User"); u != "" {
		user, password = u, r.Header.Get("X-ClickHouse-Key")
	} else if u, p, ok := r.BasicAuth(); ok {
		user, password = u, p
	}
	if user == "" {
		user = "default"
	}
	if err := s.authenticate(user, password); err != nil {
		return err
	}
	if get("decompress") == "1" || get("compress") == "1" {
		return newQueryError(codeNotImplemented, "compress=1 and decompress=1 (ClickHouse's block compression over HTTP) are not supported by chserver: use Content-Encoding (gzip, deflate, zstd, lz4, bz2) for the request body")
	}
	if v := get("client_protocol_version"); v != "" {
		rev, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return newQueryError(codeSyntaxError, "client_protocol_version %q is not a number", v)
		}
		h.revision, h.types = rev, typeCache{}
	}
	h.database = firstOf(get("database"), r.Header.Get("X-ClickHouse-Database"), "default")
	h.format = firstOf(get("default_format"), r.Header.Get("X-ClickHouse-Format"), "TabSeparated")
	values := map[string]string{}
	for k := range params {
		switch {
		case strings.HasPrefix(k, "param_"):
			values[k[len("param_"):]] = get(k)
		case httpParams[k]:
		case !validSettingName(k):
			return newQueryError(codeSyntaxError, "bad setting name %q in the URL", k)
		default:
			h.settings = setSetting(h.settings, sqlSetting{Key: k, Value: quoteString(get(k))})
		}
	}

	body, err := decodedBody(r)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }()
	sql, data, err := splitHTTPQuery(get("query"), body)
	if err != nil {
		return err
	}
	if sql, err = bindParams(sql, values); err != nil {
		return err
	}
	toks, err := lex(sql)
	if err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	switch classify(sql, toks) {
	case stmtSelect:
		return s.httpSelect(h, sql)
	case stmtInsert:
		return s.httpInsert(h, sql, data)
	case stmtSet, stmtUse:
		return newQueryError(codeNotImplemented, "SET and USE need a session, which chserver's HTTP interface does not keep: pass settings as URL parameters (?max_threads=2) and the database as ?database=name")
	default:
		return s.httpOther(h, sql)
	}
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

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
		name := toks[i+1].text(sql)
		typ := strings.TrimSpace(sql[toks[i+2].end:toks[j].start])
		v, ok := values[name]
		if !ok {
			return "", newQueryError(codeUnknownQueryParameter, "Substitution `%s` is not set (pass it as param_%s in the URL)", name, name)
		}
		b.WriteString(sql[last:open.start])
		if typ == "Identifier" {
			b.WriteString(quoteIdent(v))
		} else {
			// The value is in the escaped text form, whose escapes are those of SQL strings.
			b.WriteString("CAST('" + strings.ReplaceAll(v, "'", `\'`) + "' AS " + typ + ")")
		}
		last = toks[j].end
		i = j
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}

// httpSelect streams a query's result in the requested format.
func (s *Server) httpSelect(h *httpRequest, sql string) error {
	sql, format, err := rewriteSelectFormat(sql, h.settings)
	if err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	if format != "" {
		h.format = format
	}
	sess, err := s.engine.Acquire(h.r.Context())
	if err != nil {
		return err
	}
	if err := useDatabase(sess, h.database); err != nil {
		sess.Release()
		return err
	}
	stream, err := sess.Stream(sql, h.format)
	if err != nil {
		sess.Release()
		return err
	}
	sp := newSpool(s.cfg.SpoolMemory, s.cfg.TmpDir)
	defer sp.close()
	produced := sp.fill(sess, stream)
	stopCancel := context.AfterFunc(h.r.Context(), sp.cancel)
	defer stopCancel()
	defer func() { sp.cancel(); <-produced }()

	chunk, err := sp.next()
	if err != nil {
		return err
	}
	if chunk == nil && strings.EqualFold(h.format, chdb.NativeFormat) {
		// chDB writes nothing for an empty result, where ClickHouse sends a block with the
		// columns' names and types and no rows.
		var cols []column
		if err := s.withSession(h.r.Context(), h.database, func(sess *chdb.Session) (err error) {
			cols, err = describe(sess, "DESCRIBE TABLE ("+sql+")")
			return err
		}); err == nil {
			chunk = headerBlock(nil, cols)
		}
	}
	h.header(h.format)
	h.w.WriteHeader(http.StatusOK)
	for ; chunk != nil && err == nil; chunk, err = sp.next() {
		var out []byte
		if out, err = h.output(chunk); err != nil {
			break
		}
		if _, werr := h.w.Write(out); werr != nil {
			return nil // the client has gone
		}
	}
	if err != nil {
		// The status is sent: like ClickHouse, end the body with the exception.
		_, _ = fmt.Fprintf(h.w, "\nCode: %d. %s\n", errorCode(err), exceptionText(err))
		h.log.Info("http query failed after its first bytes", zap.Error(err))
	}
	return nil
}

// output is chunk as the client reads it: chDB's Native blocks are rewritten for the
// client's protocol revision, if it gave one.
func (h *httpRequest) output(chunk []byte) ([]byte, error) {
	if h.revision == 0 || !strings.EqualFold(h.format, chdb.NativeFormat) {
		return chunk, nil
	}
	var out []byte
	for len(chunk) > 0 {
		var n int
		var err error
		if out, n, err = appendRevisionBlock(out, chunk, h.types, h.revision); err != nil {
			return nil, newQueryError(codeNotImplemented, "Native output for client_protocol_version %d: %v", h.revision, err)
		}
		chunk = chunk[n:]
	}
	return out, nil
}

// httpOther runs a statement that is not a SELECT or an INSERT with data (DDL, INSERT ...
// SELECT, OPTIMIZE, ...), with the request's settings set around it.
func (s *Server) httpOther(h *httpRequest, sql string) error {
	return s.httpExec(h, stripDropSync(sql), h.settings)
}

func (s *Server) httpExec(h *httpRequest, sql string, settings []sqlSetting) error {
	var out []byte
	err := s.withSession(h.r.Context(), h.database, func(sess *chdb.Session) (err error) {
		out, err = execWithSettings(sess, sql, h.format, settings)
		return err
	})
	if err != nil {
		return err
	}
	if out, err = h.output(out); err != nil {
		return err
	}
	h.header(h.format)
	h.w.WriteHeader(http.StatusOK)
	_, _ = h.w.Write(out)
	return nil
}

// httpInsert writes the request's data to a file and has chDB insert it.
func (s *Server) httpInsert(h *httpRequest, sql string, data io.Reader) error {
	st, err := parseInsert(sql)
	if err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	if st.Direct {
		return s.httpOther(h, sql)
	}
	if data == nil {
		return newQueryError(codeNoDataToInsert, "No data to insert: send it in the request body after the query")
	}
	f, err := os.CreateTemp(s.cfg.TmpDir, "chserver-http-insert-*")
	if err != nil {
		return fmt.Errorf("create insert file: %w", err)
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	n, err := io.Copy(f, data)
	if err != nil {
		return newQueryError(codeCannotReadAllData, "read insert data: %v", err)
	}
	if n == 0 {
		return newQueryError(codeNoDataToInsert, "No data to insert")
	}
	stmt := insertFromFile(st.quotedTable(), st.Columns, f.Name(), st.Settings, h.settings, st.Format)
	if err := s.withSession(h.r.Context(), h.database, func(sess *chdb.Session) error {
		_, err := sess.Exec(stmt)
		return err
	}); err != nil {
		return err
	}
	h.header("")
	h.w.WriteHeader(http.StatusOK)
	return nil
}

func (h *httpRequest) header(format string) {
	hd := h.w.Header()
	hd.Set("X-ClickHouse-Query-Id", h.id)
	hd.Set("X-ClickHouse-Server-Display-Name", "chserver")
	if format != "" {
		hd.Set("X-ClickHouse-Format", format)
		hd.Set("Content-Type", contentType(format))
	}
}

func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case strings.HasPrefix(f, "json"):
		return "application/json; charset=UTF-8"
	case strings.HasPrefix(f, "tabseparated"), strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case strings.HasPrefix(f, "pretty"), f == "vertical", f == "markdown", f == "values":
		return "text/plain; charset=UTF-8"
	}
	return "application/octet-stream"
}

// fail answers err as ClickHouse does: an error status, the code in a header, the message.
func (h *httpRequest) fail(err error) {
	code := errorCode(err)
	hd := h.w.Header()
	hd.Set("X-ClickHouse-Exception-Code", strconv.Itoa(int(code)))
	hd.Set("X-ClickHouse-Query-Id", h.id)
	hd.Set("Content-Type", "text/plain; charset=UTF-8")
	h.w.WriteHeader(httpStatus(code))
	_, _ = fmt.Fprintf(h.w, "Code: %d. %s\n", code, exceptionText(err))
}

// exceptionText is err's message without a leading "Code: N. " (which fail writes itself).
func exceptionText(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "Code: ") {
		if i := strings.Index(msg, ". "); i > 0 {
			return msg[i+2:]
		}
	}
	if !strings.HasPrefix(msg, "DB::Exception") {
		msg = "DB::Exception: " + msg
	}
	return msg
}

// httpStatus maps an error code to the HTTP status ClickHouse answers it with.
func httpStatus(code int32) int {
	switch code {
	case codeAuthFailed, 194, 195, 192: // AUTHENTICATION_FAILED, REQUIRED_PASSWORD, WRONG_PASSWORD, UNKNOWN_USER
		return http.StatusUnauthorized
	case 497, 164: // ACCESS_DENIED, READONLY
		return http.StatusForbidden
	case codeUnknownTable, codeUnknownDatabase, 46, 47, 50, 16, codeUnknownFormat, 115, 36: // UNKNOWN_FUNCTION, UNKNOWN_IDENTIFIER, UNKNOWN_TYPE, NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_SETTING, BAD_ARGUMENTS
		return http.StatusNotFound
	case codeSyntaxError, 27, 6, 26, 38, 41, 69, 72, codeNoDataToInsert, codeUnknownQueryParameter, 457: // CANNOT_PARSE_*, ARGUMENT_OUT_OF_BOUND, BAD_QUERY_PARAMETER
		return http.StatusBadRequest
	case 53, 43, 44: // TYPE_MISMATCH, ILLEGAL_TYPE_OF_ARGUMENT, ILLEGAL_COLUMN
		return http.StatusBadRequest
	case codeNotImplemented:
		return http.StatusNotImplemented
	case codeQueryCancelled:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}
