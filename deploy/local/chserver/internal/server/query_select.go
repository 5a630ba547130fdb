package server

// A SELECT over the native protocol: run on chDB, its Native output cut into one Data packet per
// block.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// runSelect streams a query's result: chDB's output goes through a spool so that the engine
// is free again as soon as the result is produced, however slowly the client reads.
func (c *conn) runSelect(ctx context.Context, q *queryPacket, settings []sqlSetting) error {
	sql, err := rewriteSelect(q.Body, c.srv.readSettings(q.Body, settings, c.role))
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	// The socket is watched from before the wait for a slot: a client that cancels or goes
	// away while queued, or before the first block, stops its query.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWatch := c.watchCancel(cancel)
	watching := true
	stopWatching := func() bool {
		if !watching {
			return false
		}
		watching = false
		return stopWatch()
	}
	defer stopWatching()
	sess, release, err := c.srv.acquireRead(qctx, c.role)
	if err != nil {
		if stopWatching() {
			return protocolErrorf("client sent a packet while its query was running")
		}
		if qctx.Err() != nil && ctx.Err() == nil {
			return nil // the client cancelled or left: nothing to answer
		}
		return c.sendError(err)
	}
	if err := useDatabase(sess, c.database); err != nil {
		release()
		stopWatching()
		return c.sendError(err)
	}
	stream, err := sess.StreamContext(qctx, sql, chdb.NativeFormat, q.Parameters)
	if err != nil {
		release()
		if violation := stopWatching(); violation {
			return protocolErrorf("client sent a packet while its query was running")
		}
		return c.sendError(err)
	}
	sp := newSpool(c.srv.cfg.SpoolMemory, c.srv.cfg.TmpDir)
	defer sp.close()
	produced := sp.fill(stream, release)
	stopCancel := context.AfterFunc(qctx, sp.cancel)
	defer stopCancel()
	var violation bool
	err = c.sendResult(qctx, sp, sql, q.Compression, func() { violation = stopWatching() })
	if err != nil {
		sp.cancel()
	}
	<-produced
	if violation && err == nil {
		err = protocolErrorf("client sent a packet while its query was running")
	}
	return err
}

// sendResult writes the spooled chunks as Data packets, each followed by a Progress packet,
// then ProfileInfo and EndOfStream, or the exception.
func (c *conn) sendResult(ctx context.Context, sp *spool, sql string, compressed bool, beforeEnd func()) error {
	ended := false
	defer func() {
		if !ended {
			beforeEnd()
		}
	}()
	header := false
	var prof proto.Profile
	var sentRows, sentBytes uint64
	progress := func() error {
		rows, bytes := sp.read()
		if rows <= sentRows && bytes <= sentBytes {
			return nil
		}
		p := proto.Progress{Rows: rows - min(rows, sentRows), Bytes: bytes - min(bytes, sentBytes)}
		sentRows, sentBytes = max(rows, sentRows), max(bytes, sentBytes)
		return c.w.progress(p, c.revision)
	}
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
		if err := c.sendBlocks(chunk, &header, compressed, &prof); err != nil {
			return err
		}
		if err := progress(); err != nil {
			return err
		}
		if err := c.w.flush(); err != nil {
			return err
		}
	}
	if !header {
		cols, err := c.describe(ctx, "DESCRIBE TABLE ("+sql+")")
		if err == nil {
			if err := c.sendBlock(headerBlock(nil, cols), compressed); err != nil {
				return err
			}
		}
	}
	ended = true
	beforeEnd()
	if err := c.w.profileInfo(prof); err != nil {
		return err
	}
	if err := progress(); err != nil {
		return err
	}
	if err := c.w.endOfStream(); err != nil {
		return err
	}
	return c.w.flush()
}

// sendBlocks cuts chDB's Native output into blocks and sends one Data packet per block,
// after a header block (no rows) before the first.
func (c *conn) sendBlocks(out []byte, header *bool, compressed bool, prof *proto.Profile) error {
	for len(out) > 0 {
		b, err := nextBlock(out, c.types, !*header)
		if errors.Is(err, errUnsupportedType) {
			// chDB streams one block per chunk: the rest is sent whole, and serves as header.
			// From revision 54454 the block needs a flag after each column's type, which
			// cannot be placed without walking the columns.
			if c.revision >= minRevisionCustomSerialization {
				return newQueryError(codeNotImplemented, "chserver cannot send columns of this type over the native protocol (%v): select them with a -Merge combinator, toString(), or over HTTP", err)
			}
			*header = true
			return c.w.dataPacket(out, compressed)
		}
		if err != nil {
			return fmt.Errorf("split chdb output: %w", err)
		}
		if !*header {
			if err := c.sendBlock(headerBlock(nil, b.Columns), compressed); err != nil {
				return err
			}
			*header = true
		}
		if b.Rows > 0 {
			if err := c.sendBlock(b.Bytes, compressed); err != nil {
				return err
			}
			if prof != nil {
				prof.Rows += uint64(b.Rows)
				prof.Blocks++
				prof.Bytes += uint64(len(b.Bytes))
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
func (c *conn) watchCancel(cancel func()) func() bool { return c.watch(cancel, true) }

// watch is watchCancel; with onClose false, a closed socket does not cancel (an INSERT whose
// data has all arrived is finished, as ClickHouse does).
func (c *conn) watch(cancel func(), onClose bool) func() bool {
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
			if onClose {
				cancel()
			}
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
