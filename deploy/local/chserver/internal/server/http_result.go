package server

// The HTTP answer: a SELECT streamed in its format, other statements and INSERTs run with the
// request's settings, and the headers of the answer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
	"go.uber.org/zap"
)

// httpSelect streams a query's result in the requested format. Native output is chDB's
// stream cut at block boundaries (a sequence of blocks is one valid Native document); every
// other format is written by the engine itself in one go (INTO OUTFILE a FIFO this server
// reads), so that JSON, Parquet, Arrow, the WithNames formats and the rest are one document
// however many blocks the result has, streamed as the engine writes it.
func (s *Server) httpSelect(h *httpRequest, sql string) error {
	_, format, err := rewriteSelectFormat(sql, nil)
	if err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	if format != "" {
		h.format = format
	}
	settings := s.readSettings(sql, h.settings, h.role)
	if strings.EqualFold(h.format, "Arrow") || strings.EqualFold(h.format, "ArrowStream") {
		// chDB 26.5's Arrow writer hangs now and then (1 query in 10 to 30, for ever, deaf to
		// KILL) when the pipeline has several threads; with one it does not (300 in a row).
		settings = setSetting(append([]sqlSetting(nil), settings...), sqlSetting{Key: "max_threads", Value: "1"})
	}
	if sql, _, err = rewriteSelectFormat(sql, settings); err != nil {
		return newQueryError(codeSyntaxError, "Syntax error: %v", err)
	}
	ctx := h.r.Context()
	sess, release, err := s.acquireRead(ctx, h.role)
	if err != nil {
		return err
	}
	if err := useDatabase(sess, h.database); err != nil {
		release()
		return err
	}
	sp := newSpool(s.cfg.SpoolMemory, s.cfg.TmpDir)
	defer sp.close()
	var produced <-chan struct{}
	native := strings.EqualFold(h.format, chdb.NativeFormat)
	if native {
		stream, err := sess.StreamContext(ctx, sql, chdb.NativeFormat, h.params)
		if err != nil {
			release()
			return err
		}
		produced = sp.fill(stream, release)
	} else if isShow(sql) {
		produced = fillWhole(ctx, sp, sess, release, sql, h.format, h.params)
	} else {
		if produced, err = s.fillFormatted(ctx, sp, sess, release, sql, h.format, h.params); err != nil {
			release()
			return err
		}
	}
	stopCancel := context.AfterFunc(ctx, sp.cancel)
	defer stopCancel()
	defer func() { sp.cancel(); <-produced }()

	if h.waitEnd {
		// wait_end_of_query=1: the whole result is spooled before the headers, which then
		// carry the final summary, and an error gets its proper status.
		<-produced
	}
	chunk, err := sp.next()
	if err != nil {
		return err
	}
	if chunk == nil && native {
		// chDB writes nothing for an empty result, where ClickHouse sends a block with the
		// columns' names and types and no rows.
		var cols []column
		if err := s.withSession(ctx, h.database, h.role, func(sess *chdb.Session) (err error) {
			cols, err = describe(sess, "DESCRIBE TABLE ("+sql+")")
			return err
		}); err == nil {
			chunk = headerBlock(nil, cols)
		}
	}
	h.summary = sp.summary()
	h.header(h.format)
	body := h.startBody(http.StatusOK)
	for ; chunk != nil && err == nil; chunk, err = sp.next() {
		var out []byte
		if out, err = h.output(chunk); err != nil {
			break
		}
		if _, werr := body.Write(out); werr != nil {
			return nil // the client has gone
		}
		body.flush()
	}
	if err != nil {
		// The status is sent: like ClickHouse, end the body with the exception.
		_, _ = fmt.Fprintf(body, "\nCode: %d. %s\n", errorCode(err), exceptionText(err))
		h.log.Info("http query failed after its first bytes", zap.Error(err))
	}
	body.close()
	return nil
}

// fillFormatted runs sql on sess with its output in format written by the engine into a FIFO,
// whose bytes go to sp as they come; release is called when the statement has ended. The
// FIFO is read to its end whatever happens (a cancelled query is killed, not abandoned), so
// the engine never writes into a pipe without a reader.
func (s *Server) fillFormatted(ctx context.Context, sp *spool, sess *chdb.Session, release func(), sql, format string, params map[string]string) (<-chan struct{}, error) {
	dir, err := os.MkdirTemp(s.cfg.TmpDir, "chserver-out-")
	if err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	fifo := filepath.Join(dir, "out")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("create output fifo: %w", err)
	}
	stmt := sql + " INTO OUTFILE " + quoteString(fifo) + " APPEND FORMAT " + quoteIdent(format)
	// The read end is opened first (without waiting for a writer), then a write end of our
	// own, held until the statement has ended: the reader sees the end of the output only
	// then, whether or not the engine ever opened the FIFO (a statement can fail before).
	rd, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("open output fifo: %w", err)
	}
	hold, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		_ = rd.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("open output fifo: %w", err)
	}
	read := make(chan error, 1)
	go func() { read <- copyFIFO(rd, sp) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = os.RemoveAll(dir) }()
		r, err := sess.ExecContext(ctx, stmt, "Null", params)
		release()
		_ = hold.Close()
		rerr := <-read
		sp.setSummary(r)
		if err == nil {
			err = rerr
		}
		sp.finish(err)
	}()
	return done, nil
}

// isShow reports whether sql is a SHOW statement: chDB rewrites it into a SELECT of a system
// table and drops its INTO OUTFILE clause, so fillFormatted would get nothing.
func isShow(sql string) bool {
	t, _, ok, err := scan(sql, 0, 0)
	return err == nil && ok && t.is(sql, "SHOW")
}

// fillWhole runs sql on sess with its output in format, whole (a SHOW statement's result is a
// list of names), into sp; release is called when the statement has ended.
func fillWhole(ctx context.Context, sp *spool, sess *chdb.Session, release func(), sql, format string, params map[string]string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := sess.ExecContext(ctx, sql, format, params)
		release()
		if err == nil && len(r.Data) > 0 {
			_, err = sp.put(r.Data)
		}
		sp.setSummary(r)
		sp.finish(err)
	}()
	return done
}

// copyFIFO copies the FIFO's bytes into sp until every writer has closed it; after a cancel
// it keeps reading and drops what it reads, so the engine never writes into a pipe without
// a reader.
func copyFIFO(f *os.File, sp *spool) error {
	defer func() { _ = f.Close() }()
	buf := make([]byte, 256<<10)
	keep := true
	var failed error
	for {
		n, err := f.Read(buf)
		if n > 0 && keep {
			ok, perr := sp.put(buf[:n])
			if perr != nil {
				// The spool cannot take more (no disk space): the query is stopped by its
				// caller on this error, and the rest of the output dropped.
				failed, ok = perr, false
				sp.cancel()
			}
			keep = ok
		}
		if errors.Is(err, io.EOF) {
			return failed
		}
		if err != nil {
			return fmt.Errorf("read output fifo: %w", err)
		}
	}
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
	var r chdb.Result
	err := s.withSession(h.r.Context(), h.database, h.role, func(sess *chdb.Session) (err error) {
		r, err = execWithSettingsContext(h.r.Context(), sess, sql, h.format, settings, h.params)
		out = r.Data
		return err
	})
	if err != nil {
		return err
	}
	if out, err = h.output(out); err != nil {
		return err
	}
	h.summary = summaryOf(r)
	h.header(h.format)
	body := h.startBody(http.StatusOK)
	_, _ = body.Write(out)
	body.close()
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
	var r chdb.Result
	if err := s.withSession(h.r.Context(), h.database, h.role, func(sess *chdb.Session) (err error) {
		r, err = sess.ExecContext(h.r.Context(), stmt, chdb.NativeFormat, nil)
		return err
	}); err != nil {
		return err
	}
	h.summary = summaryOf(r)
	h.header("")
	h.startBody(http.StatusOK).close()
	return nil
}

func (h *httpRequest) header(format string) {
	hd := h.w.Header()
	hd.Set("X-ClickHouse-Query-Id", h.id)
	hd.Set("X-ClickHouse-Server-Display-Name", "chserver")
	hd.Set("X-ClickHouse-Timezone", h.timezone)
	hd.Set("X-ClickHouse-Summary", h.summary.json())
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
