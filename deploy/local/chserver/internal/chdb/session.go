package chdb

// A session is one of the engine's chDB connections, held by one statement at a time, with the
// kill that stops its statement.

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Session runs statements on one connection of the engine; only its holder uses it, except
// for Kill, which any goroutine may call.
type Session struct {
	e    *Engine
	conn unsafe.Pointer
	idle chan *Session // the pool it belongs to
	// Database is the connection's current database, as last set with USE through it.
	Database string
	// role is the connection's current role, as last set with SetRole ("": the default
	// roles of the engine's user).
	role string

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
func (s *Session) Release() { s.idle <- s }

// SetRole makes role the connection's only current role (SET ROLE), unless it already is:
// the privileges of the statements it runs next are that role's.
func (s *Session) SetRole(role string) error {
	if s.role == role {
		return nil
	}
	if _, err := s.Exec("SET ROLE " + quoteName(role)); err != nil {
		s.role = ""
		return err
	}
	s.role = role
	return nil
}

// quoteName renders an access entity's name as a quoted identifier.
func quoteName(name string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(name) + "`"
}

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
