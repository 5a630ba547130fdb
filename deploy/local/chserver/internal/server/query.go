package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	if err := c.role.checkSettings(settings, !isRead(q.Body, toks)); err != nil {
		return c.sendError(err)
	}
	if err := c.role.checkStatement(q.Body, toks, kind, q.Parameters, c.srv.tableFunctions); err != nil {
		return c.sendError(err)
	}
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
		err = c.runOther(ctx, q.Body, settings, q.Compression, q.Parameters)
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
	ncols, _, err = readClientBlock(c.r, out, c.types, c.revision)
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

// runOther runs a statement that is neither a SELECT nor an INSERT of client data. Its
// settings are set on the session for this statement only, then put back.
func (c *conn) runOther(ctx context.Context, sql string, settings []sqlSetting, compressed bool, params map[string]string) error {
	sql = stripDropSync(sql)
	var out []byte
	err := c.cancellable(ctx, true, func(ctx context.Context) error {
		return c.withSession(ctx, func(s *chdb.Session) error {
			r, err := execWithSettingsContext(ctx, s, sql, chdb.NativeFormat, settings, params)
			out = r.Data
			return err
		})
	})
	if errors.Is(err, errClientGone) {
		return err
	}
	if err != nil {
		return c.sendError(err)
	}
	if len(out) > 0 {
		header := false
		if err := c.sendBlocks(out, &header, compressed, nil); err != nil {
			return err
		}
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// errClientGone ends a connection whose client cancelled or left while its statement ran.
var errClientGone = errors.New("client cancelled or left while its statement ran")

// cancellable runs fn while watching the socket: a Cancel packet or (onClose) a closed socket ends fn's
// context (which kills its statement). It returns errClientGone when that happened, or when
// the client sent anything else meanwhile (a protocol violation).
func (c *conn) cancellable(ctx context.Context, onClose bool, fn func(context.Context) error) error {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := c.watch(cancel, onClose)
	err := fn(qctx)
	violation := stop()
	if violation || (qctx.Err() != nil && ctx.Err() == nil) {
		return errClientGone
	}
	return err
}

// execWithSettingsContext runs sql with settings set on the session around it (statements that
// take no SETTINGS clause of their own: DDL, OPTIMIZE, INSERT ... SELECT), output in format,
// with chDB's counters; the statement is killed when ctx is done.
func execWithSettingsContext(ctx context.Context, s *chdb.Session, sql, format string, settings []sqlSetting, params map[string]string) (chdb.Result, error) {
	restore, err := applySettings(s, settings)
	if err != nil {
		return chdb.Result{}, err
	}
	r, err := s.ExecContext(ctx, sql, format, params)
	if rerr := restore(); err == nil {
		err = rerr
	}
	return r, err
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
	if err := c.role.checkSettings(list, true); err != nil {
		return c.sendError(err)
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
	if err := c.role.checkDatabase(db); err != nil {
		return c.sendError(err)
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
