package server

// Admission: how many statements run on the engine at once, and who waits for whom.

import (
	"context"
	"strconv"
	"time"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// codeTooManyQueries is ClickHouse's TOO_MANY_SIMULTANEOUS_QUERIES.
const codeTooManyQueries = 202

// acquireRead takes a read slot and an engine session for a SELECT (or SHOW, DESCRIBE, ...).
// Reads hold at most MaxQueries-1 sessions: one is always left for inserts and DDL. When no
// slot frees within QueueWait, it fails with TOO_MANY_SIMULTANEOUS_QUERIES.
func (s *Server) acquireRead(ctx context.Context, role *Role) (*chdb.Session, func(), error) {
	until := time.Now().Add(s.cfg.QueueWait)
	select {
	case s.readSlots <- struct{}{}:
	default:
		wait := time.NewTimer(s.cfg.QueueWait)
		defer wait.Stop()
		select {
		case s.readSlots <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-wait.C:
			return nil, nil, s.fullError("read", cap(s.readSlots))
		}
	}
	sess, err := s.acquireSession(ctx, until, role)
	if err != nil {
		<-s.readSlots
		return nil, nil, err
	}
	return sess, func() { sess.Release(); <-s.readSlots }, nil
}

// acquireWrite takes an engine session for any other statement: it waits only for other
// writes and DDL, never for a read.
func (s *Server) acquireWrite(ctx context.Context, role *Role) (*chdb.Session, func(), error) {
	sess, err := s.acquireSession(ctx, time.Now().Add(s.cfg.QueueWait), role)
	if err != nil {
		return nil, nil, err
	}
	return sess, sess.Release, nil
}

// acquireSession takes a session with role's privileges: one of the role's own pool, whose
// sessions hold its profile, or one of the engine's pool, switched to the role (nil: the
// server's own statements, with the engine's default roles).
func (s *Server) acquireSession(ctx context.Context, until time.Time, role *Role) (*chdb.Session, error) {
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	acquire, size := s.engine.Acquire, s.engine.Size()
	if role != nil && s.pools[role.Name] != nil {
		p := s.pools[role.Name]
		acquire, size = p.Acquire, p.Size()
	}
	sess, err := acquire(wctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.fullError("engine", size)
	}
	if role != nil && s.pools[role.Name] == nil {
		if err := sess.SetRole(role.Name); err != nil {
			sess.Release()
			return nil, err
		}
	}
	return sess, nil
}

func (s *Server) fullError(what string, n int) error {
	return newQueryError(codeTooManyQueries, "Too many simultaneous queries: all %d %s slots of chserver were busy for %s. Retry later, cancel a running query, or give chserver a larger -max-queries (now %d)",
		n, what, s.cfg.QueueWait, s.cfg.MaxQueries)
}

// readSettings adds the server's default max_execution_time to a read's settings, unless the
// client gave its own or the role's profile bounds it.
func (s *Server) readSettings(sql string, settings []sqlSetting, role *Role) []sqlSetting {
	if s.cfg.MaxExecutionTime <= 0 || !takesSettings(sql) {
		return settings
	}
	if _, ok := role.constraint("max_execution_time"); ok {
		return settings // the role's profile sets it on its sessions, and bounds it
	}
	for _, st := range settings {
		if st.Key == "max_execution_time" {
			return settings
		}
	}
	secs := strconv.FormatFloat(s.cfg.MaxExecutionTime.Seconds(), 'f', -1, 64)
	return append(append([]sqlSetting(nil), settings...), sqlSetting{Key: "max_execution_time", Value: secs})
}

// takesSettings reports whether a read is a SELECT, which takes a SETTINGS clause (SHOW,
// DESCRIBE and the like get none from the server).
func takesSettings(sql string) bool {
	toks, err := lex(sql)
	if err != nil || len(toks) == 0 {
		return false
	}
	t := toks[0]
	return t.kind == tokPunct && sql[t.start] == '(' || t.is(sql, "SELECT") || t.is(sql, "WITH")
}
