// Package server speaks ClickHouse's native TCP protocol and runs every statement on the
// chDB engine. It is development and test infrastructure, never a production store.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// Server accepts native-protocol connections and serves them on one chDB engine.
type Server struct {
	cfg      Config
	log      *zap.Logger
	engine   *chdb.Engine
	hello    serverHello
	draining atomic.Bool

	readSlots chan struct{}
	// pools are the sessions of the roles that have a settings profile (the read-only
	// analyst): prepared once with the role and its profile, used by that role alone.
	pools map[string]*chdb.Pool
	// tableFunctions are the engine's table functions, lower case.
	tableFunctions map[string]bool

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
	seq   atomic.Uint64
}

// New prepares a server on an open engine; it reads the engine's version and time zone,
// which the handshake announces.
func New(cfg Config, engine *chdb.Engine, log *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TmpDir == "" {
		cfg.TmpDir = filepath.Join(cfg.DataDir, "tmp")
	}
	if err := os.MkdirAll(cfg.TmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("create tmp dir: %w", err)
	}
	if engine.Size() < cfg.MaxQueries {
		cfg.MaxQueries = engine.Size()
	}
	s := &Server{cfg: cfg, log: log, engine: engine, conns: map[*conn]struct{}{},
		readSlots: make(chan struct{}, max(1, cfg.MaxQueries-1))}
	sess, err := engine.Acquire(context.Background())
	if err != nil {
		return nil, err
	}
	out, err := sess.Exec("SELECT version(), timezone()")
	sess.Release()
	if err != nil {
		return nil, fmt.Errorf("read engine version: %w", err)
	}
	rows, err := stringColumns(out, 2)
	if err != nil || len(rows) != 1 {
		return nil, fmt.Errorf("read engine version: %v", err)
	}
	s.hello = parseVersion(rows[0][0])
	s.hello.Timezone = rows[0][1]
	s.hello.DisplayName = "chserver"
	if err := s.prepareRoles(); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareRoles reads the engine's table functions, opens the pool of each role with a
// profile, and checks that the engine knows every other role (it was opened with the
// configuration of cfg.Roles).
func (s *Server) prepareRoles() error {
	sess, err := s.engine.Acquire(context.Background())
	if err != nil {
		return err
	}
	defer sess.Release()
	out, err := sess.Exec("SELECT name FROM system.table_functions")
	if err != nil {
		return fmt.Errorf("read table functions: %w", err)
	}
	rows, err := stringColumns(out, 1)
	if err != nil {
		return fmt.Errorf("read table functions: %w", err)
	}
	s.tableFunctions = map[string]bool{}
	for _, r := range rows {
		s.tableFunctions[strings.ToLower(r[0])] = true
	}
	s.pools = map[string]*chdb.Pool{}
	for _, name := range s.cfg.Roles.names() {
		r := s.cfg.Roles[name]
		if r.Profile == nil {
			if err := sess.SetRole(r.Name); err != nil {
				return fmt.Errorf("role %s: %w (was the engine opened with the roles' configuration?)", r.Name, err)
			}
			continue
		}
		p, err := s.engine.NewPool(r.Name, max(1, s.cfg.MaxQueries-1), r.setup())
		if err != nil {
			return fmt.Errorf("role %s: %w (was the engine opened with the roles' configuration?)", r.Name, err)
		}
		s.pools[r.Name] = p
	}
	return nil
}

// Version is the engine's version, as announced to clients.
func (s *Server) Version() string {
	return fmt.Sprintf("%d.%d.%d", s.hello.Major, s.hello.Minor, s.hello.Patch)
}

func parseVersion(v string) serverHello {
	var h serverHello
	parts := strings.Split(v, ".")
	nums := []*int{&h.Major, &h.Minor, &h.Patch}
	for i := 0; i < len(parts) && i < len(nums); i++ {
		*nums[i], _ = strconv.Atoi(parts[i])
	}
	return h
}

// Serve accepts connections on ln until ctx is done, then shuts down: idle connections are
// closed at once, running queries get ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	// Queries keep running on shutdown; only waiting for the engine is interrupted.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	var acceptErr error
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("accept: %w", err)
			}
			break
		}
		s.start(connCtx, nc)
	}
	s.shutdown(cancelConns)
	return acceptErr
}

func (s *Server) start(ctx context.Context, nc net.Conn) {
	id := s.seq.Add(1)
	c := newConn(s, nc, s.log.With(zap.Uint64("conn", id), zap.String("remote", nc.RemoteAddr().String())))
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = nc.Close()
		}()
		// Go's signal handlers are restored after chDB starts (see chdb.Open), so a panic in
		// one connection's Go code can be recovered: it ends that connection only.
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("connection panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		if err := c.serve(ctx); err != nil {
			c.log.Info("connection closed on error", zap.Error(err))
		}
	}()
}

func (s *Server) shutdown(cancelConns context.CancelFunc) {
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		if c.idle.Load() {
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(s.cfg.ShutdownTimeout):
	}
	s.log.Warn("shutdown timeout: closing connections with running queries")
	cancelConns()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	<-done
}

// ErrNotReady is returned by Ping when the server does not answer as expected.
var ErrNotReady = errors.New("clickhouse server not ready")
