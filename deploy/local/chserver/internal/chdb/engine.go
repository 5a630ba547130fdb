package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// Session runs statements on one connection of the engine; only its holder uses it, except
// for Kill, which any goroutine may call.
type Session struct {
	e    *Engine
	conn unsafe.Pointer
	// Database is the connection's current database, as last set with USE through it.
	Database string

	mu      sync.Mutex
	current *statement
}

// statement is the one a session is running: its marker, a comment that starts its text so
// that KILL QUERY can find it in system.processes (chDB has no query_id setting).
type statement struct {
	marker string
	done   chan struct{}
	kill   sync.Once
}

// Release gives the session back to the pool.
func (s *Session) Release() { s.e.idle <- s }

// begin marks query as the session's running statement and returns its text with the marker.
func (s *Session) begin(query string) (string, *statement) {
	st := &statement{marker: "/* chserver-q" + strconv.FormatUint(s.e.seq.Add(1), 10) + " */", done: make(chan struct{})}
	s.mu.Lock()
	s.current = st
	s.mu.Unlock()
	return st.marker + " " + query, st
}

func (s *Session) end(st *statement) {
	s.mu.Lock()
	if s.current == st {
		s.current = nil
	}
	s.mu.Unlock()
	close(st.done)
}

// killRetry is how often a kill is repeated while its statement runs: a KILL issued before
// the statement is listed in system.processes finds nothing.
const killRetry = 100 * time.Millisecond

// Kill stops the session's running statement, if any, within milliseconds; the statement
// then fails with code 394 (QUERY_WAS_CANCELLED). It returns at once.
func (s *Session) Kill() {
	s.mu.Lock()
	st := s.current
	s.mu.Unlock()
	if st != nil {
		s.killStatement(st)
	}
}

func (s *Session) killStatement(st *statement) {
	st.kill.Do(func() {
		go func() {
			t := time.NewTicker(killRetry)
			defer t.Stop()
			for {
				s.e.kill(st.marker)
				select {
				case <-st.done:
					return
				case <-t.C:
				}
			}
		}()
	})
}

// Result is the output of a statement run whole, with chDB's counters: rows and bytes read
// from storage (ClickHouse's read_rows), rows of the result, rows and bytes written.
type Result struct {
	Data         []byte
	RowsRead     uint64
	ResultRows   uint64
	BytesRead    uint64
	RowsWritten  uint64
	BytesWritten uint64
	Elapsed      time.Duration
}

// Exec runs a statement and returns its whole output in Native format (nil for none).
// It is for statements with small or no results: DDL, INSERT, DESCRIBE.
func (s *Session) Exec(query string) ([]byte, error) { return s.ExecFormat(query, NativeFormat) }

// ExecFormat is Exec with the output in format, any of ClickHouse's output formats; a FORMAT
// clause of the statement itself takes precedence.
func (s *Session) ExecFormat(query, format string) ([]byte, error) {
	r, err := s.ExecContext(context.Background(), query, format, nil)
	return r.Data, err
}

// ExecContext runs a statement whole; when ctx is done the statement is killed. params bind
// the statement's {name:Type} placeholders in the engine (values in their text form).
func (s *Session) ExecContext(ctx context.Context, query, format string, params map[string]string) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	l := s.e.lib
	query, st := s.begin(query)
	stop := context.AfterFunc(ctx, func() { s.killStatement(st) })
	var res unsafe.Pointer
	if len(params) > 0 {
		p := newParamArrays(params)
		res = l.queryParamsN(s.conn, strData(query), uintptr(len(query)), strData(format), uintptr(len(format)),
			p.names, p.nameLens, p.values, p.valueLens, p.count)
	} else {
		res = l.queryN(s.conn, strData(query), uintptr(len(query)), strData(format), uintptr(len(format)))
	}
	stop()
	s.end(st)
	if res == nil {
		return Result{}, nil
	}
	defer l.destroyResult(res)
	if msg := goString(l.resultError(res)); msg != "" {
		return Result{}, newError(msg)
	}
	return Result{
		Data:         copyBuffer(l, res),
		RowsRead:     l.resultStorageRowsRead(res),
		BytesRead:    l.resultStorageBytesRead(res),
		ResultRows:   l.resultRowsRead(res),
		RowsWritten:  l.resultRowsWritten(res),
		BytesWritten: l.resultBytesWritten(res),
		Elapsed:      time.Duration(l.resultElapsed(res) * float64(time.Second)),
	}, nil
}

func copyBuffer(l *library, res unsafe.Pointer) []byte {
	n := int(l.resultLength(res))
	p := l.resultBuffer(res)
	if n == 0 || p == nil {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(p), n)...)
}

// paramArrays are {name:Type} values laid out as chdb_*_with_params_n takes them.
type paramArrays struct {
	names, values       **byte
	nameLens, valueLens *uintptr
	count               uintptr
	keep                [][]byte
}

func newParamArrays(params map[string]string) *paramArrays {
	p := &paramArrays{count: uintptr(len(params))}
	names := make([]*byte, 0, len(params))
	values := make([]*byte, 0, len(params))
	nameLens := make([]uintptr, 0, len(params))
	valueLens := make([]uintptr, 0, len(params))
	for k, v := range params {
		kb, vb := []byte(k+"\x00"), []byte(v+"\x00")
		p.keep = append(p.keep, kb, vb)
		names, nameLens = append(names, &kb[0]), append(nameLens, uintptr(len(k)))
		values, valueLens = append(values, &vb[0]), append(valueLens, uintptr(len(v)))
	}
	p.names, p.values, p.nameLens, p.valueLens = &names[0], &values[0], &nameLens[0], &valueLens[0]
	return p
}

// Stream starts a query whose output, in format, is read in chunks with Next; the Stream
// must be closed. While it is open, the session runs no other statement.
func (s *Session) Stream(query, format string) (*Stream, error) {
	return s.StreamContext(context.Background(), query, format, nil)
}

// StreamContext is Stream whose query is killed when ctx is done, with params bound as in
// ExecContext.
func (s *Session) StreamContext(ctx context.Context, query, format string, params map[string]string) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := s.e.lib
	marked, st := s.begin(query)
	var res unsafe.Pointer
	if len(params) > 0 {
		p := newParamArrays(params)
		res = l.streamQueryParamsN(s.conn, strData(marked), uintptr(len(marked)), strData(format), uintptr(len(format)),
			p.names, p.nameLens, p.values, p.valueLens, p.count)
	} else {
		res = l.streamQueryN(s.conn, strData(marked), uintptr(len(marked)), strData(format), uintptr(len(format)))
	}
	if res == nil {
		s.end(st)
		return nil, newError("chdb returned no stream")
	}
	if msg := goString(l.resultError(res)); msg != "" {
		l.destroyResult(res)
		s.end(st)
		if strings.Contains(msg, streamingNotSupported) {
			// DESCRIBE and a few others cannot stream; their results are small.
			r, err := s.ExecContext(ctx, query, format, params)
			if err != nil {
				return nil, err
			}
			return &Stream{s: s, whole: r.Data, done: true}, nil
		}
		return nil, newError(msg)
	}
	stream := &Stream{s: s, res: res, st: st}
	stream.stop = context.AfterFunc(ctx, func() { s.killStatement(st) })
	return stream, nil
}

// streamingNotSupported is chDB's message when a statement (DESCRIBE, ...) cannot stream.
const streamingNotSupported = "Streaming query is not supported"

// noActiveStream is chDB's message when a stream is fetched after its query has ended.
const noActiveStream = "No active streaming query"

// Stream is a running query's output.
type Stream struct {
	s     *Session
	res   unsafe.Pointer
	chunk unsafe.Pointer
	whole []byte // the output of a statement run without streaming, returned by the first Next
	done  bool
	st    *statement
	stop  func() bool

	RowsRead, BytesRead uint64
}

// Next returns the next chunk of output, valid until the next call to Next or Close, or nil
// at the end of the result.
func (st *Stream) Next() ([]byte, error) {
	l := st.s.e.lib
	st.freeChunk()
	if st.whole != nil {
		out := st.whole
		st.whole = nil
		return out, nil
	}
	if st.done {
		return nil, nil
	}
	c := l.streamFetch(st.s.conn, st.res)
	if c == nil {
		st.done = true
		return nil, nil
	}
	if msg := goString(l.resultError(c)); msg != "" {
		l.destroyResult(c)
		st.done = true
		if strings.Contains(msg, noActiveStream) {
			// After a chunk that was the whole output of a framed format (JSON's closing
			// brace, CSVWithNames' header), chDB reports this instead of an empty chunk.
			return nil, nil
		}
		return nil, newError(msg)
	}
	st.RowsRead += l.resultStorageRowsRead(c)
	st.BytesRead += l.resultStorageBytesRead(c)
	n := int(l.resultLength(c))
	p := l.resultBuffer(c)
	if n == 0 || p == nil {
		l.destroyResult(c)
		st.done = true
		return nil, nil
	}
	st.chunk = c
	return unsafe.Slice((*byte)(p), n), nil
}

// Kill stops the stream's query from any goroutine; Next then reports code 394.
func (st *Stream) Kill() {
	if st.st != nil {
		st.s.killStatement(st.st)
	}
}

func (st *Stream) freeChunk() {
	if st.chunk != nil {
		st.s.e.lib.destroyResult(st.chunk)
		st.chunk = nil
	}
}

// Close stops the query if it has not finished and frees its memory. An unfinished query is
// killed and its remaining output read and dropped: chDB's own cancel would wait for the next
// block, however long the query takes to produce it.
func (st *Stream) Close() {
	l := st.s.e.lib
	st.freeChunk()
	if st.res == nil {
		return
	}
	if !st.done {
		st.Kill()
		for {
			c, err := st.Next()
			if c == nil || err != nil {
				break
			}
		}
		st.freeChunk()
	}
	l.destroyResult(st.res)
	st.res = nil
	if st.stop != nil {
		st.stop()
	}
	if st.st != nil {
		st.s.end(st.st)
	}
}
