package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// ClickHouse error codes this server raises itself.
const (
	codeSyntaxError     = 62
	codeNotImplemented  = 48
	codeUnknownDatabase = 81
	codeUnknownPacket   = 101
	codeNoSuchColumn    = 16
	codeUnknownTable    = 60
	codeAuthFailed      = 516
	codeQueryCancelled  = 394
	codeClientRevision  = 33 // CANNOT_READ_ALL_DATA is close enough for an outdated client
)

// queryError is an exception for the client, raised by the server rather than by chDB.
type queryError struct {
	code int32
	msg  string
}

func (e *queryError) Error() string { return e.msg }

func newQueryError(code int32, format string, args ...any) *queryError {
	return &queryError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handshakeEngineWait bounds how long a hello waits for the engine to check its database.
const handshakeEngineWait = time.Second

// conn serves one client connection: handshake, then pings and queries one at a time.
type conn struct {
	srv      *Server
	nc       net.Conn
	r        *wireReader
	w        *wireWriter
	log      *zap.Logger
	revision uint64
	user     string
	role     *Role
	database string
	settings []sqlSetting // from SET statements: this connection's own session settings
	types    typeCache
	idle     atomic.Bool
	inQuery  atomic.Bool // a Query packet is being served
}

func newConn(srv *Server, nc net.Conn, log *zap.Logger) *conn {
	return &conn{srv: srv, nc: nc, r: newWireReader(nc), w: newWireWriter(nc), log: log, types: typeCache{}}
}

// serve runs the connection until the client leaves, a protocol error, or shutdown.
func (c *conn) serve(ctx context.Context) error {
	if err := c.handshake(ctx); err != nil {
		return err
	}
	for {
		c.idle.Store(true)
		if c.srv.draining.Load() {
			return nil
		}
		code, err := c.r.raw.ReadByte()
		c.idle.Store(false)
		if err != nil {
			if errors.Is(err, io.EOF) || c.srv.draining.Load() {
				return nil
			}
			return fmt.Errorf("read packet: %w", err)
		}
		switch code {
		case clientPing:
			if err := c.w.pong(); err != nil {
				return err
			}
			if err := c.w.flush(); err != nil {
				return err
			}
		case clientQuery:
			var q queryPacket
			if err := q.decode(c.r, c.revision); err != nil {
				return fmt.Errorf("decode query: %w", err)
			}
			c.inQuery.Store(true)
			err := c.query(ctx, &q)
			c.inQuery.Store(false)
			if err != nil {
				return err
			}
		case clientCancel:
			// A cancel that arrives after its query ended needs nothing.
		default:
			_ = c.w.exception(codeUnknownPacket, fmt.Sprintf("unexpected packet %d from client", code))
			_ = c.w.flush()
			return protocolErrorf("unexpected packet %d", code)
		}
	}
}

func (c *conn) handshake(ctx context.Context) error {
	_ = c.nc.SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	code, err := c.r.raw.ReadByte()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if code != clientHello {
		return protocolErrorf("expected hello, got packet %d", code)
	}
	var h clientHelloPacket
	if err := h.decode(c.r); err != nil {
		return fmt.Errorf("decode hello: %w", err)
	}
	reject := func(code int32, msg string) error {
		_ = c.w.exception(code, msg)
		_ = c.w.flush()
		return errors.New(msg)
	}
	if h.Revision < minClientRevision {
		return reject(codeClientRevision, fmt.Sprintf("client protocol revision %d is older than %d", h.Revision, minClientRevision))
	}
	c.revision = min(h.Revision, serverRevision)
	if h.User == "" {
		h.User = "default"
	}
	role, err := c.srv.authenticate(h.User, h.Password)
	if err != nil {
		return reject(codeAuthFailed, err.Error())
	}
	c.user, c.role = h.User, role
	c.database = h.Database
	if c.database == "" {
		c.database = c.srv.defaultDatabase(role)
	}
	if err := role.checkDatabase(c.database); err != nil {
		return reject(codeAccessDenied, err.Error())
	}
	// The database must exist, as a real server checks; but the engine may be busy with a
	// long statement, and a client waits for the hello only its dial timeout. When the engine
	// is not free soon, the hello is answered and the first query reports an unknown database.
	check, cancel := context.WithTimeout(ctx, handshakeEngineWait)
	err = c.withSession(check, func(*chdb.Session) error { return nil })
	cancel()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return reject(codeUnknownDatabase, fmt.Sprintf("Database %s does not exist: %v", c.database, err))
	}
	c.log = c.log.With(zap.String("user", c.user), zap.String("role", role.Name), zap.String("client", h.Name))
	if err := c.w.hello(c.srv.hello, c.revision); err != nil {
		return err
	}
	if err := c.w.flush(); err != nil {
		return err
	}
	if c.revision >= revisionAddendum {
		if _, err := c.r.str(); err != nil { // the addendum: a quota key, unused
			return fmt.Errorf("read hello addendum: %w", err)
		}
	}
	return nil
}

// sendBlock sends a block of chDB's Native format as a Data packet, with the
// custom-serialization flags the connection's revision expects.
func (c *conn) sendBlock(block []byte, compressed bool) error {
	if c.revision >= minRevisionCustomSerialization {
		out, n, err := appendBlockFlags(nil, block, c.types)
		if err != nil {
			return err
		}
		if n != len(block) {
			return fmt.Errorf("block of %d bytes read as %d", len(block), n)
		}
		block = out
	}
	return c.w.dataPacket(block, compressed)
}

// withSession runs fn with the engine's session, switched to this connection's database.
func (c *conn) withSession(ctx context.Context, fn func(*chdb.Session) error) error {
	return c.srv.withSession(ctx, c.database, c.role, fn)
}

// withSession runs fn with an engine session of role, switched to database db. It is for
// statements other than reads (see acquireWrite) and for the small statements around a read.
func (s *Server) withSession(ctx context.Context, db string, role *Role, fn func(*chdb.Session) error) error {
	sess, release, err := s.acquireWrite(ctx, role)
	if err != nil {
		return err
	}
	defer release()
	if err := useDatabase(sess, db); err != nil {
		return err
	}
	return fn(sess)
}

// useDatabase makes db the session's current database.
func useDatabase(s *chdb.Session, db string) error {
	if s.Database == db {
		return nil
	}
	if _, err := s.Exec("USE " + quoteIdent(db)); err != nil {
		s.Database = ""
		return err
	}
	s.Database = db
	return nil
}

// errorCode is the ClickHouse error code that err reports to a client.
func errorCode(err error) int32 {
	var qe *queryError
	var ce *chdb.Error
	switch {
	case errors.As(err, &qe):
		return qe.code
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, context.Canceled):
		return codeQueryCancelled
	}
	return chdb.UnknownExceptionCode
}

// sendError reports err to the client as a ClickHouse exception.
func (c *conn) sendError(err error) error {
	code := errorCode(err)
	c.log.Debug("query error", zap.Int32("code", code), zap.Error(err))
	if werr := c.w.exception(code, err.Error()); werr != nil {
		return werr
	}
	return c.w.flush()
}

// compressionFor picks the server's compression method: the client's
// network_compression_method setting when given, LZ4 otherwise, as ClickHouse does.
func compressionFor(settings []setting) compress.Method {
	for _, s := range settings {
		if s.Key == "network_compression_method" {
			switch s.Value {
			case "zstd", "ZSTD":
				return compress.ZSTD
			case "none", "NONE":
				return compress.None
			}
		}
	}
	return compress.LZ4
}
