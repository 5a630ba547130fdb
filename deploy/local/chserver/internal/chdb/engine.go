package chdb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// NativeFormat is the only output format this package asks chDB for.
const NativeFormat = "Native"

// Engine is the process's single chDB engine on a data folder. Statements run one at a time:
// a Session, taken with Acquire, is the right to run them, and it is released by Release.
type Engine struct {
	lib   *library
	conn  unsafe.Pointer // chdb_connection*
	turn  chan *Session
	owner Session
}

// Open starts the engine on dataDir, with libchdb.so at libPath (CHDB_LIB_PATH when empty).
// Go's signal handlers are saved before and restored after chDB starts, and chDB is asked not
// to install its own: a Go panic must stay a Go panic.
func Open(libPath, dataDir string) (*Engine, error) {
	l, err := loadLibrary(libPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	args := []string{"clickhouse", "--path=" + dataDir}
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		argv[i] = cString(a)
	}
	saved := saveSignals()
	l.setSignalHandlers(0)
	connPtr := l.connect(int32(len(args)), &argv[0])
	saved.restore()
	if connPtr == nil {
		return nil, fmt.Errorf("start chdb on %s: chdb_connect returned no connection (is another process using this folder?)", dataDir)
	}
	conn := *(*unsafe.Pointer)(connPtr)
	if conn == nil {
		return nil, fmt.Errorf("start chdb on %s: empty connection", dataDir)
	}
	e := &Engine{lib: l, conn: connPtr, turn: make(chan *Session, 1)}
	e.owner = Session{e: e, conn: conn}
	e.turn <- &e.owner
	return e, nil
}

// Acquire waits for the engine's turn. The caller must Release the session.
func (e *Engine) Acquire(ctx context.Context) (*Session, error) {
	select {
	case s := <-e.turn:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the engine after the running statement, if any, has finished.
func (e *Engine) Close() {
	s := <-e.turn
	e.lib.closeConn(e.conn)
	s.conn = nil
}

// Session runs statements on the engine; only one exists and only its holder uses it.
type Session struct {
	e    *Engine
	conn unsafe.Pointer
	// Database is the engine's current database, as last set with USE through this session.
	Database string
}

// Release gives the engine's turn back.
func (s *Session) Release() { s.e.turn <- s }

// Exec runs a statement and returns its whole output in Native format (nil for none).
// It is for statements with small or no results: DDL, INSERT, DESCRIBE.
func (s *Session) Exec(query string) ([]byte, error) { return s.ExecFormat(query, NativeFormat) }

// ExecFormat is Exec with the output in format, any of ClickHouse's output formats; a FORMAT
// clause of the statement itself takes precedence.
func (s *Session) ExecFormat(query, format string) ([]byte, error) {
	l := s.e.lib
	res := l.queryN(s.conn, strData(query), uintptr(len(query)), strData(format), uintptr(len(format)))
	if res == nil {
		return nil, nil
	}
	defer l.destroyResult(res)
	if msg := goString(l.resultError(res)); msg != "" {
		return nil, newError(msg)
	}
	return copyBuffer(l, res), nil
}

func copyBuffer(l *library, res unsafe.Pointer) []byte {
	n := int(l.resultLength(res))
	p := l.resultBuffer(res)
	if n == 0 || p == nil {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(p), n)...)
}

// Stream starts a query whose output, in format (Native for the native protocol), is read in
// chunks with Next; the Stream must be closed. While it is open, chDB runs no other statement.
func (s *Session) Stream(query, format string) (*Stream, error) {
	l := s.e.lib
	res := l.streamQueryN(s.conn, strData(query), uintptr(len(query)), strData(format), uintptr(len(format)))
	if res == nil {
		return nil, newError("chdb returned no stream")
	}
	if msg := goString(l.resultError(res)); msg != "" {
		l.destroyResult(res)
		if strings.Contains(msg, streamingNotSupported) {
			// DESCRIBE and a few others cannot stream; their results are small.
			out, err := s.ExecFormat(query, format)
			if err != nil {
				return nil, err
			}
			return &Stream{s: s, whole: out, done: true}, nil
		}
		return nil, newError(msg)
	}
	return &Stream{s: s, res: res}, nil
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
}

// Next returns the next chunk of Native output, valid until the next call to Next or Close,
// or nil at the end of the result.
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

func (st *Stream) freeChunk() {
	if st.chunk != nil {
		st.s.e.lib.destroyResult(st.chunk)
		st.chunk = nil
	}
}

// Close cancels the query if it has not finished and frees its memory.
func (st *Stream) Close() {
	l := st.s.e.lib
	st.freeChunk()
	if st.res == nil {
		return
	}
	if !st.done {
		l.streamCancel(st.s.conn, st.res)
	}
	l.destroyResult(st.res)
	st.res = nil
}
