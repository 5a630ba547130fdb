package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// query runs one Query packet to its end. A returned error closes the connection; errors
// the client should see as exceptions are sent and not returned.
func (c *conn) query(ctx context.Context, q *queryPacket) error {
	start := time.Now()
	c.w.method = compressionFor(q.Settings)
	if err := c.readExternalTables(q.Compression); err != nil {
		return err
	}
	settings, err := c.querySettings(q.Settings)
	if err != nil {
		return c.sendError(err)
	}
	toks, err := lex(q.Body)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	kind := classify(q.Body, toks)
	switch kind {
	case stmtSelect:
		err = c.runSelect(ctx, q, settings)
	case stmtInsert:
		err = c.runInsert(ctx, q, settings)
	case stmtSet:
		err = c.runSet(ctx, q.Body)
	case stmtUse:
		err = c.runUse(ctx, q.Body)
	default:
		err = c.runOther(ctx, q.Body, settings, q.Compression)
	}
	c.log.Debug("query", zap.String("query_id", q.ID), zap.Duration("elapsed", time.Since(start)), zap.Error(err))
	return err
}

// readExternalTables consumes the data blocks a client sends after its query (external
// tables, ended by an empty block). External tables are not supported and are dropped.
func (c *conn) readExternalTables(compressed bool) error {
	for {
		ncols, err := c.readDataPacket(nil, compressed)
		if err != nil {
			return err
		}
		if ncols == 0 {
			return nil
		}
	}
}

// readDataPacket reads one client Data packet, copying its block to out when not nil.
func (c *conn) readDataPacket(out *bufio.Writer, compressed bool) (ncols uint64, err error) {
	code, err := c.r.raw.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("read data packet: %w", noEOF(err))
	}
	if code != clientData {
		return 0, protocolErrorf("expected a data packet, got packet %d", code)
	}
	if _, err := c.r.str(); err != nil { // table name
		return 0, err
	}
	c.r.setCompressed(compressed)
	defer c.r.setCompressed(false)
	ncols, _, err = readClientBlock(c.r, out, c.types)
	return ncols, err
}

// querySettings merges the connection's SET settings with the query's own.
func (c *conn) querySettings(qs []setting) ([]sqlSetting, error) {
	out := append([]sqlSetting(nil), c.settings...)
	for _, s := range qs {
		if !validSettingName(s.Key) {
			return nil, newQueryError(codeSyntaxError, "bad setting name %q", s.Key)
		}
		out = setSetting(out, sqlSetting{Key: s.Key, Value: quoteString(s.Value)})
	}
	return out, nil
}

func setSetting(list []sqlSetting, s sqlSetting) []sqlSetting {
	for i := range list {
		if list[i].Key == s.Key {
			list[i] = s
			return list
		}
	}
	return append(list, s)
}

// runSelect streams a query's result: chDB's output goes through a spool so that the engine
// is free again as soon as the result is produced, however slowly the client reads.
func (c *conn) runSelect(ctx context.Context, q *queryPacket, settings []sqlSetting) error {
	sql, err := rewriteSelect(q.Body, settings)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	sess, err := c.srv.engine.Acquire(ctx)
	if err != nil {
		return c.sendError(err)
	}
	if err := useDatabase(sess, c.database); err != nil {
		sess.Release()
		return c.sendError(err)
	}
	stream, err := sess.Stream(sql, chdb.NativeFormat)
	if err != nil {
		sess.Release()
		return c.sendError(err)
	}
	sp := newSpool(c.srv.cfg.SpoolMemory, c.srv.cfg.TmpDir)
	defer sp.close()
	produced := sp.fill(sess, stream)
	stopWatch := c.watchCancel(sp.cancel)
	var violation bool
	err = c.sendResult(ctx, sp, sql, q.Compression, func() { violation = stopWatch() })
	if err != nil {
		sp.cancel()
	}
	<-produced
	if violation && err == nil {
		err = protocolErrorf("client sent a packet while its query was running")
	}
	return err
}

// sendResult writes the spooled chunks as Data packets, then EndOfStream or the exception.
func (c *conn) sendResult(ctx context.Context, sp *spool, sql string, compressed bool, beforeEnd func()) error {
	ended := false
	defer func() {
		if !ended {
			beforeEnd()
		}
	}()
	header := false
	for {
		if sp.isCancelled() {
			return context.Canceled
		}
		chunk, err := sp.next()
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil {
			ended = true
			beforeEnd()
			return c.sendError(err)
		}
		if chunk == nil {
			break
		}
		if err := c.sendBlocks(chunk, &header, compressed); err != nil {
			return err
		}
		if err := c.w.flush(); err != nil {
			return err
		}
	}
	if !header {
		cols, err := c.describe(ctx, "DESCRIBE TABLE ("+sql+")")
		if err == nil {
			if err := c.w.dataPacket(headerBlock(nil, cols), compressed); err != nil {
				return err
			}
		}
	}
	ended = true
	beforeEnd()
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// sendBlocks cuts chDB's Native output into blocks and sends one Data packet per block,
// after a header block (no rows) before the first.
func (c *conn) sendBlocks(out []byte, header *bool, compressed bool) error {
	for len(out) > 0 {
		b, err := nextBlock(out, c.types, !*header)
		if errors.Is(err, errUnsupportedType) {
			// chDB streams one block per chunk: the rest is sent whole, and serves as header.
			*header = true
			return c.w.dataPacket(out, compressed)
		}
		if err != nil {
			return fmt.Errorf("split chdb output: %w", err)
		}
		if !*header {
			if err := c.w.dataPacket(headerBlock(nil, b.Columns), compressed); err != nil {
				return err
			}
			*header = true
		}
		if b.Rows > 0 {
			if err := c.w.dataPacket(b.Bytes, compressed); err != nil {
				return err
			}
		}
		out = out[len(b.Bytes):]
	}
	return nil
}

// describe runs a DESCRIBE statement and returns the columns it lists.
func (c *conn) describe(ctx context.Context, sql string) (cols []column, err error) {
	err = c.withSession(ctx, func(s *chdb.Session) error {
		cols, err = describe(s, sql)
		return err
	})
	return cols, err
}

// describe runs a DESCRIBE statement on s and returns the columns it lists.
func describe(s *chdb.Session, sql string) ([]column, error) {
	out, err := s.Exec(sql)
	if err != nil {
		return nil, err
	}
	rows, err := stringColumns(out, 3)
	if err != nil {
		return nil, fmt.Errorf("read DESCRIBE output: %w", err)
	}
	cols := make([]column, 0, len(rows))
	for _, r := range rows {
		switch r[2] {
		case "MATERIALIZED", "ALIAS", "EPHEMERAL":
			continue
		}
		cols = append(cols, column{Name: r[0], Type: r[1]})
	}
	return cols, nil
}

// watchCancel watches the socket while a query runs: a Cancel packet or a closed socket
// calls cancel. The returned function stops the watch and reports whether the client sent
// something else than Cancel (a protocol violation).
func (c *conn) watchCancel(cancel func()) func() bool {
	done := make(chan struct{})
	var violation bool
	go func() {
		defer close(done)
		code, err := c.r.raw.ReadByte()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			cancel()
			return
		}
		if code != clientCancel {
			violation = true
		}
		cancel()
	}()
	return func() bool {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = c.nc.SetReadDeadline(time.Time{})
		return violation
	}
}

// runInsert receives an INSERT's data blocks into a Native file and has chDB load it with
// INSERT ... FROM INFILE (inline data is unsafe in chDB).
func (c *conn) runInsert(ctx context.Context, q *queryPacket, settings []sqlSetting) error {
	st, err := parseInsert(q.Body)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	if st.Direct {
		return c.runOther(ctx, q.Body, settings, q.Compression)
	}
	table := st.quotedTable()
	tableCols, err := c.describe(ctx, "DESCRIBE TABLE "+table)
	if err != nil {
		return c.sendError(err)
	}
	cols := tableCols
	if st.Columns != nil {
		cols = make([]column, 0, len(st.Columns))
		for _, name := range st.Columns {
			i := indexOfColumn(tableCols, name)
			if i < 0 {
				return c.sendError(newQueryError(codeNoSuchColumn, "No such column %s in table %s", name, table))
			}
			cols = append(cols, column{Name: name, Type: tableCols[i].Type})
		}
	}
	if err := c.w.dataPacket(headerBlock(nil, cols), q.Compression); err != nil {
		return err
	}
	if err := c.w.flush(); err != nil {
		return err
	}

	f, err := os.CreateTemp(c.srv.cfg.TmpDir, "chserver-insert-*.native")
	if err != nil {
		return c.drainAndFail(q.Compression, fmt.Errorf("create insert file: %w", err))
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	out := bufio.NewWriterSize(f, 1<<20)
	var rows uint64
	for {
		code, err := c.r.raw.ReadByte()
		if err != nil {
			return fmt.Errorf("read insert data: %w", noEOF(err))
		}
		if code == clientCancel {
			return nil
		}
		if code != clientData {
			return protocolErrorf("expected a data packet, got packet %d", code)
		}
		if _, err := c.r.str(); err != nil {
			return err
		}
		c.r.setCompressed(q.Compression)
		ncols, n, err := readClientBlock(c.r, out, c.types)
		c.r.setCompressed(false)
		if err != nil {
			// The stream can no longer be followed: report and close the connection.
			_ = c.sendError(newQueryError(codeNotImplemented, "read insert block: %v", err))
			return fmt.Errorf("read insert block: %w", err)
		}
		if ncols == 0 {
			break
		}
		rows += n
	}
	if err := out.Flush(); err != nil {
		return c.sendError(fmt.Errorf("write insert file: %w", err))
	}
	if rows > 0 {
		names := make([]string, len(cols))
		for i, col := range cols {
			names[i] = col.Name
		}
		sql := insertFromFile(table, names, f.Name(), st.Settings, settings, chdb.NativeFormat)
		if err := c.withSession(ctx, func(s *chdb.Session) error {
			_, err := s.Exec(sql)
			return err
		}); err != nil {
			return c.sendError(err)
		}
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// insertFromFile is the statement that inserts file's data, in format, into table (quoted),
// with the INSERT's own SETTINGS assignments and the request's settings.
func insertFromFile(table string, columns []string, file, own string, settings []sqlSetting, format string) string {
	sql := "INSERT INTO " + table
	if columns != nil {
		names := make([]string, len(columns))
		for i, c := range columns {
			names[i] = quoteIdent(c)
		}
		sql += " (" + strings.Join(names, ", ") + ")"
	}
	sql += " FROM INFILE " + quoteString(file)
	if len(settings) > 0 {
		if own != "" {
			own += ", "
		}
		own += renderSettings(settings)
	}
	if own != "" {
		sql += " SETTINGS " + own
	}
	return sql + " FORMAT " + quoteIdent(format)
}

// drainAndFail reads the client's insert blocks to their end, then reports err.
func (c *conn) drainAndFail(compressed bool, err error) error {
	for {
		ncols, rerr := c.readDataPacket(nil, compressed)
		if rerr != nil {
			return rerr
		}
		if ncols == 0 {
			return c.sendError(err)
		}
	}
}

func indexOfColumn(cols []column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// runOther runs a statement that is neither a SELECT nor an INSERT of client data. Its
// settings are set on the session for this statement only, then put back.
func (c *conn) runOther(ctx context.Context, sql string, settings []sqlSetting, compressed bool) error {
	sql = stripDropSync(sql)
	var out []byte
	err := c.withSession(ctx, func(s *chdb.Session) (err error) {
		out, err = execWithSettings(s, sql, chdb.NativeFormat, settings)
		return err
	})
	if err != nil {
		return c.sendError(err)
	}
	if len(out) > 0 {
		header := false
		if err := c.sendBlocks(out, &header, compressed); err != nil {
			return err
		}
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// execWithSettings runs sql with settings set on the session around it (statements that take
// no SETTINGS clause of their own: DDL, OPTIMIZE, INSERT ... SELECT), output in format.
func execWithSettings(s *chdb.Session, sql, format string, settings []sqlSetting) ([]byte, error) {
	restore, err := applySettings(s, settings)
	if err != nil {
		return nil, err
	}
	out, err := s.ExecFormat(sql, format)
	if rerr := restore(); err == nil {
		err = rerr
	}
	return out, err
}

// applySettings sets settings on the session and returns how to put the old values back.
func applySettings(s *chdb.Session, settings []sqlSetting) (func() error, error) {
	if len(settings) == 0 {
		return func() error { return nil }, nil
	}
	names := make([]string, len(settings))
	for i, st := range settings {
		names[i] = quoteString(st.Key)
	}
	out, err := s.Exec("SELECT name, value FROM system.settings WHERE name IN (" + strings.Join(names, ", ") + ")")
	if err != nil {
		return nil, err
	}
	old, err := stringColumns(out, 2)
	if err != nil {
		return nil, err
	}
	if _, err := s.Exec("SET " + renderSettings(settings)); err != nil {
		return nil, err
	}
	return func() error {
		if len(old) == 0 {
			return nil
		}
		prev := make([]sqlSetting, len(old))
		for i, o := range old {
			prev[i] = sqlSetting{Key: o[0], Value: quoteString(o[1])}
		}
		_, err := s.Exec("SET " + renderSettings(prev))
		return err
	}, nil
}

// stripDropSync turns DROP ... SYNC into DROP ...: SYNC sometimes hangs chDB.
func stripDropSync(sql string) string {
	toks, err := lex(sql)
	if err != nil {
		return sql
	}
	sql, toks = trimStatement(sql, toks)
	if len(toks) > 2 && toks[0].is(sql, "DROP") && toks[len(toks)-1].is(sql, "SYNC") {
		return sql[:toks[len(toks)-1].start]
	}
	return sql
}

// runSet records SET statements as this connection's settings, after checking them.
func (c *conn) runSet(ctx context.Context, sql string) error {
	list, err := parseSet(sql)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	for _, s := range list {
		if !validSettingName(s.Key) {
			return c.sendError(newQueryError(codeSyntaxError, "bad setting name %q", s.Key))
		}
	}
	if err := c.withSession(ctx, func(s *chdb.Session) error {
		_, err := s.Exec("SELECT 1 SETTINGS " + renderSettings(list))
		return err
	}); err != nil {
		return c.sendError(err)
	}
	for _, s := range list {
		c.settings = setSetting(c.settings, s)
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// runUse switches this connection's database.
func (c *conn) runUse(ctx context.Context, sql string) error {
	db, err := parseUse(sql)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	prev := c.database
	c.database = db
	if err := c.withSession(ctx, func(*chdb.Session) error { return nil }); err != nil {
		c.database = prev
		return c.sendError(err)
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}
