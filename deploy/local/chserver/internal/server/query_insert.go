package server

// An INSERT over the native protocol: the client's blocks go to a Native file as they arrive,
// then chDB loads it with INSERT ... FROM INFILE.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// runInsert receives an INSERT's data blocks into a Native file and has chDB load it with
// INSERT ... FROM INFILE (inline data is unsafe in chDB).
func (c *conn) runInsert(ctx context.Context, q *queryPacket, settings []sqlSetting) error {
	st, err := parseInsert(q.Body)
	if err != nil {
		return c.sendError(newQueryError(codeSyntaxError, "Syntax error: %v", err))
	}
	if st.Direct {
		return c.runOther(ctx, q.Body, settings, q.Compression, q.Parameters)
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
	if err := c.sendBlock(headerBlock(nil, cols), q.Compression); err != nil {
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
		ncols, n, err := readClientBlock(c.r, out, c.types, c.revision)
		c.r.setCompressed(false)
		if err != nil {
			// The stream can no longer be followed: report and close the connection.
			_ = c.sendError(newQueryError(codeNotImplemented, "read insert block: %v", err))
			return fmt.Errorf("read insert block: %w", err)
		}
		if c.revision >= revisionProfileEventsInInsert {
			// From this revision clients (clickhouse-driver) wait for a ProfileEvents packet
			// in answer to each block they insert, the last, empty one included.
			if err := c.w.profileEvents(); err != nil {
				return err
			}
			if err := c.w.flush(); err != nil {
				return err
			}
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
		err := c.cancellable(ctx, false, func(ctx context.Context) error {
			return c.withSession(ctx, func(s *chdb.Session) error {
				_, err := s.ExecContext(ctx, sql, chdb.NativeFormat, nil)
				return err
			})
		})
		if errors.Is(err, errClientGone) {
			return err
		}
		if err != nil {
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
