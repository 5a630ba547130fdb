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

	ctlMu   sync.Mutex
	control unsafe.Pointer // chdb_connection, for KILL QUERY only
	conns   []unsafe.Pointer

	seq       atomic.Uint64
	closeOnce sync.Once
}

// Open starts the engine on dataDir with sessions connections (at least 1), with libchdb.so
// at libPath (CHDB_LIB_PATH when empty). Go's signal handlers are saved before and restored
// after chDB starts, and chDB is asked not to install its own: a Go panic must stay a Go panic.
func Open(libPath, dataDir string, sessions int) (*Engine, error) {
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
	e := &Engine{lib: l, args: []string{"clickhouse", "--path=" + dataDir}, size: sessions, idle: make(chan *Session, sessions)}
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
		s := &Session{e: e, conn: c}
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
func (e *Engine) Acquire(ctx context.Context) (*Session, error) {
	select {
	case s := <-e.idle:
		return s, nil
	default:
	}
	select {
	case s := <-e.idle:
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
		e.closeAll()
	})
}

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
