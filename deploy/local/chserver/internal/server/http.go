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
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
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
	role     *Role
	id       string
	database string
	format   string
	settings []sqlSetting
	// revision is the client_protocol_version parameter: Native output then follows that
	// protocol revision's block layout (clickhouse-go over HTTP sends it).
	revision uint64
	types    typeCache
	timezone string
	summary  summary
	// waitEnd is wait_end_of_query=1: the result is produced whole before the answer starts.
	waitEnd bool
	// encoding is the response's Content-Encoding ("" for none), compressionLevel its level.
	encoding         string
	compressionLevel int
	// params are the param_name values of {name:Type} placeholders.
	params map[string]string
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
	if err := s.browserCheck(r); err != nil {
		s.log.Info("http request refused", zap.String("remote", r.RemoteAddr), zap.String("origin", r.Header.Get("Origin")), zap.Error(err))
		http.Error(w, "Code: 497. DB::Exception: "+err.Error(), http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "Code: 48. DB::Exception: HTTP method "+r.Method+" is not supported: GET (reads) or POST", http.StatusMethodNotAllowed)
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodGet && !params.Has("query") {
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	h := &httpRequest{w: w, r: r, id: params.Get("query_id"), timezone: s.hello.Timezone}
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
	role, err := s.authenticate(user, password)
	if err != nil {
		return err
	}
	h.role = role
	if simplePost(r) && r.Header.Get("X-ClickHouse-User") == "" && r.Header.Get("Authorization") == "" {
		// What a browser page may send to any site without asking (a form or text POST
		// without custom headers) must not run a query, whoever's password it carries.
		return newQueryError(codeAccessDenied, "a POST of %s must authenticate with the X-ClickHouse-User and X-ClickHouse-Key headers or basic authentication, not URL parameters (a browser form could send it)", r.Header.Get("Content-Type"))
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
	h.waitEnd = get("wait_end_of_query") == "1"
	if v := get("enable_http_compression"); v == "1" || strings.EqualFold(v, "true") {
		h.encoding = responseEncoding(r.Header.Get("Accept-Encoding"))
		h.compressionLevel = 3
		if l, err := strconv.Atoi(get("http_zlib_compression_level")); err == nil {
			h.compressionLevel = l
		}
	}
	h.database = firstOf(get("database"), r.Header.Get("X-ClickHouse-Database"), s.defaultDatabase(role))
	if err := role.checkDatabase(h.database); err != nil {
		return err
	}
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
	toks, err := lex(sql)
	if err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	// {name:Type} values are bound by the engine, as ClickHouse binds them, except in an
	// INSERT of data, whose statement is rewritten (INSERT ... FROM INFILE) first.
	h.params = values
	kind := classify(sql, toks)
	if err := role.checkSettings(h.settings, !isRead(sql, toks)); err != nil {
		return err
	}
	if err := role.checkStatement(sql, toks, kind, values, s.tableFunctions); err != nil {
		return err
	}
	if r.Method != http.MethodPost && !isRead(sql, toks) {
		return newQueryError(codeReadonly, "Cannot execute query in readonly mode: HTTP %s runs reads only (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); send other statements by POST", r.Method)
	}
	switch kind {
	case stmtSelect:
		return s.httpSelect(h, sql)
	case stmtInsert:
		if sql, err = bindParams(sql, values); err != nil {
			return err
		}
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
	case codeTooManyQueries:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
