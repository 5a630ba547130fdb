package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// NativeFormat is the format of results the server cuts into protocol blocks.
const NativeFormat = "Native"

// Engine is the process's chDB engine on a data folder, with a pool of connections to it.
// chDB runs one statement at a time per connection (each has its own client lock) but runs
// the statements of different connections in parallel, so the pool is how many statements
// run at once. A Session, taken with Acquire, is one connection of the pool; Release gives it
// back. One more connection, outside the pool, only kills statements (see Session.Kill):
// chDB's own stream cancel waits for the next block, which a query that produces nothing
// (an aggregation over system.numbers) never delivers, while KILL QUERY from another
// connection stops any statement within milliseconds.
type Engine struct {
	lib  *library
	args []string
	size int
	idle chan *Session
	all  []*Session

	poolsMu sync.Mutex
	pools   map[string]*Pool // dedicated pools (NewPool), by name

	ctlMu   sync.Mutex
	control unsafe.Pointer // chdb_connection, for KILL QUERY only
	conns   []unsafe.Pointer

	seq       atomic.Uint64
	closeOnce sync.Once
}

// Open starts the engine on dataDir with sessions connections (at least 1), with libchdb.so
// at libPath (CHDB_LIB_PATH when empty) and args as further command-line arguments of the
// engine (such as --config-file, see WriteConfig). Go's signal handlers are saved before and
// restored after chDB starts, and chDB is asked not to install its own: a Go panic must stay
// a Go panic.
func Open(libPath, dataDir string, sessions int, args ...string) (*Engine, error) {
	if sessions < 1 {
		return nil, fmt.Errorf("chdb sessions: %d, want at least 1", sessions)
	}
	l, err := loadLibrary(libPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	e := &Engine{lib: l, args: append([]string{"clickhouse", "--path=" + dataDir}, args...), size: sessions, idle: make(chan *Session, sessions)}
	e.control, err = e.connect()
	if err != nil {
		return nil, fmt.Errorf("start chdb on %s: %w", dataDir, err)
	}
	for range sessions {
		c, err := e.connect()
		if err != nil {
			e.closeAll()
			return nil, fmt.Errorf("start chdb on %s: %w", dataDir, err)
		}
		s := &Session{e: e, conn: c, idle: e.idle}
		e.all = append(e.all, s)
		e.idle <- s
	}
	return e, nil
}

// connect opens one more connection to the engine; the first one boots it.
func (e *Engine) connect() (unsafe.Pointer, error) {
	argv := make([]*byte, len(e.args)+1)
	for i, a := range e.args {
		argv[i] = cString(a)
	}
	saved := saveSignals()
	e.lib.setSignalHandlers(0)
	connPtr := e.lib.connect(int32(len(e.args)), &argv[0])
	saved.restore()
	if connPtr == nil {
		return nil, errors.New("chdb_connect returned no connection (is another process using this folder?)")
	}
	if *(*unsafe.Pointer)(connPtr) == nil {
		return nil, errors.New("chdb_connect returned an empty connection")
	}
	e.conns = append(e.conns, connPtr)
	return *(*unsafe.Pointer)(connPtr), nil
}

// Size is the number of sessions: how many statements can run at once.
func (e *Engine) Size() int { return e.size }

// Acquire waits for a free session. The caller must Release it.
func (e *Engine) Acquire(ctx context.Context) (*Session, error) { return acquire(ctx, e.idle) }

func acquire(ctx context.Context, idle chan *Session) (*Session, error) {
	select {
	case s := <-idle:
		return s, nil
	default:
	}
	select {
	case s := <-idle:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the engine after the running statements, if any, have finished.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		for range e.size {
			<-e.idle
		}
		e.poolsMu.Lock()
		for _, p := range e.pools {
			for range p.size {
				<-p.idle
			}
		}
		e.poolsMu.Unlock()
		e.closeAll()
	})
}

// Pool is a set of sessions of the engine kept apart from its main pool, each prepared once
// by the statements given to NewPool (a role, settings and their constraints), for the
// statements of one kind of client only.
type Pool struct {
	e    *Engine
	size int
	idle chan *Session
}

// NewPool opens size more connections to the engine and runs setup on each, in order; the
// pool lives as long as the engine. A second call with the same name returns the first pool
// (whose setup and size stay those of the first call).
func (e *Engine) NewPool(name string, size int, setup []string) (*Pool, error) {
	if size < 1 {
		return nil, fmt.Errorf("chdb pool %s: %d sessions, want at least 1", name, size)
	}
	e.poolsMu.Lock()
	defer e.poolsMu.Unlock()
	if p, ok := e.pools[name]; ok {
		return p, nil
	}
	p := &Pool{e: e, size: size, idle: make(chan *Session, size)}
	for range size {
		c, err := e.connect()
		if err != nil {
			return nil, fmt.Errorf("chdb pool %s: %w", name, err)
		}
		s := &Session{e: e, conn: c, idle: p.idle}
		e.all = append(e.all, s)
		for _, q := range setup {
			if _, err := s.Exec(q); err != nil {
				return nil, fmt.Errorf("chdb pool %s: %s: %w", name, q, err)
			}
		}
		p.idle <- s
	}
	if e.pools == nil {
		e.pools = map[string]*Pool{}
	}
	e.pools[name] = p
	return p, nil
}

// Size is the number of the pool's sessions.
func (p *Pool) Size() int { return p.size }

// Acquire waits for a free session of the pool. The caller must Release it.
func (p *Pool) Acquire(ctx context.Context) (*Session, error) { return acquire(ctx, p.idle) }

// closeAll closes the sessions' connections, then the control connection: closing the last
// one shuts the engine down.
func (e *Engine) closeAll() {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	e.control = nil
	for i := len(e.conns) - 1; i >= 0; i-- {
		e.lib.closeConn(e.conns[i])
	}
	e.conns = nil
	for _, s := range e.all {
		s.conn = nil
	}
}

// kill asks the engine to stop the statement that starts with marker.
func (e *Engine) kill(marker string) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if e.control == nil {
		return
	}
	q := "KILL QUERY WHERE startsWith(query, '" + marker + "') ASYNC FORMAT Null"
	f := "Null"
	res := e.lib.queryN(e.control, strData(q), uintptr(len(q)), strData(f), uintptr(len(f)))
	if res != nil {
		e.lib.destroyResult(res)
	}
}
