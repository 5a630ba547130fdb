package server

// The HTTP answer: a SELECT streamed in its format, other statements and INSERTs run with the
// request's settings, and the headers of the answer.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
	"go.uber.org/zap"
)

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
