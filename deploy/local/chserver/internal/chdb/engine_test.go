package chdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEngine(t *testing.T) {
	e, err := Open("", t.TempDir(), 1)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	defer s.Release()

	out, err := s.Exec("SELECT version(), timezone()")
	require.NoError(t, err)
	require.Contains(t, string(out), "26.5")

	_, err = s.Exec("SELECT * FROM nope")
	var ce *Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, int32(60), ce.Code)

	out, err = s.Exec("SELECT 1 WHERE 0")
	require.NoError(t, err)
	require.Empty(t, out, "chDB writes nothing for an empty result")

	st, err := s.Stream("SELECT number, toString(number) FROM numbers(300000)", NativeFormat)
	require.NoError(t, err)
	chunks := 0
	for {
		c, err := st.Next()
		require.NoError(t, err)
		if c == nil {
			break
		}
		chunks++
	}
	st.Close()
	require.Greater(t, chunks, 1, "a big result comes in several chunks")

	// A stream closed early is cancelled, and the engine runs the next statement.
	st, err = s.Stream("SELECT number FROM numbers(100000000)", NativeFormat)
	require.NoError(t, err)
	c, err := st.Next()
	require.NoError(t, err)
	require.NotEmpty(t, c)
	st.Close()
	out, err = s.Exec("SELECT 42")
	require.NoError(t, err)
	require.NotEmpty(t, out)

	// Statements chDB cannot stream (DESCRIBE) and framed formats on an empty result read
	// like any stream: their output, then the end.
	for _, c := range []struct{ query, format, want string }{
		{"DESCRIBE TABLE system.one", "TabSeparated", "dummy\tUInt8"},
		{"SELECT number FROM numbers(0)", "JSON", `"rows": 0`},
		{"SELECT number FROM numbers(0)", "CSVWithNames", `"number"`},
	} {
		st, err := s.Stream(c.query, c.format)
		require.NoError(t, err, c.query)
		var all []byte
		for {
			chunk, err := st.Next()
			require.NoError(t, err, c.query)
			if chunk == nil {
				break
			}
			all = append(all, chunk...)
		}
		st.Close()
		require.Contains(t, string(all), c.want, c.query)
	}
}

func TestAcquireHonoursContext(t *testing.T) {
	e, err := Open("", t.TempDir(), 1)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled)
	s.Release()
}

func TestParseCode(t *testing.T) {
	for _, c := range []struct {
		msg  string
		code int32
	}{
		{"Code: 60. DB::Exception: Unknown table", 60},
		{"Code: 36. DB::Exception: outer: Code: 27. DB::Exception: inner", 27},
		{"no code here", UnknownExceptionCode},
		{"Code: abc. nope", UnknownExceptionCode},
		{"Code: 62", UnknownExceptionCode},
	} {
		require.Equal(t, c.code, parseCode(c.msg), c.msg)
	}
}

// A nil dereference raises SIGSEGV, which Go turns into a panic only if its own handler is
// installed: chDB's handler, left in place, would hang the process instead.
func TestGoSignalHandlersSurviveOpen(t *testing.T) {
	e, err := Open("", t.TempDir(), 1)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	st, err := s.Stream("SELECT number FROM numbers(10)", NativeFormat)
	require.NoError(t, err)
	st.Close()
	_, err = s.Exec("SELECT 1")
	require.NoError(t, err)
	s.Release()
	recovered := func() (r any) {
		defer func() { r = recover() }()
		var p *struct{ x int }
		return p.x
	}()
	require.NotNil(t, recovered)
	require.Contains(t, fmt.Sprint(recovered), "nil pointer dereference")
}

// A query that produces nothing for ever (an aggregation over system.numbers) stops within a
// second of its context ending, streamed or run whole, and the session runs the next one.
func TestContextKillsRunningStatement(t *testing.T) {
	e, err := Open("", t.TempDir(), 2)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	defer s.Release()
	for _, streamed := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		if streamed {
			st, err := s.StreamContext(ctx, "SELECT count() FROM system.numbers", NativeFormat, nil)
			require.NoError(t, err)
			_, err = st.Next()
			st.Close()
			require.Error(t, err)
			require.Equal(t, int32(394), err.(*Error).Code)
		} else {
			_, err := s.ExecContext(ctx, "SELECT count() FROM system.numbers", "TabSeparated", nil)
			require.Error(t, err)
			require.Equal(t, int32(394), err.(*Error).Code)
		}
		require.Less(t, time.Since(start), 1300*time.Millisecond, "stopped within a second of the cancel")
		out, err := s.ExecFormat("SELECT 42", "TabSeparated")
		require.NoError(t, err)
		require.Equal(t, "42\n", string(out))
	}
	// A stream closed before its first block is killed, not waited for.
	st, err := s.Stream("SELECT count() FROM system.numbers", NativeFormat)
	require.NoError(t, err)
	start := time.Now()
	st.Close()
	require.Less(t, time.Since(start), time.Second)
}

// The sessions of one engine run statements at the same time.
func TestSessionsRunInParallel(t *testing.T) {
	e, err := Open("", t.TempDir(), 3)
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, 3, e.Size())
	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		s, err := e.Acquire(context.Background())
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Release()
			_, err := s.Exec("SELECT sleep(1)")
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Less(t, time.Since(start), 2500*time.Millisecond, "three one-second statements ran at once")
}

func TestParamsBoundByEngine(t *testing.T) {
	e, err := Open("", t.TempDir(), 1)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	defer s.Release()
	params := map[string]string{"n": "41", "s": "it's", "c": "dummy"}
	r, err := s.ExecContext(context.Background(), "SELECT {n:UInt8} + 1, {s:String}, {c:Identifier} FROM system.one", "TabSeparated", params)
	require.NoError(t, err)
	require.Equal(t, "42\tit\\'s\t0\n", string(r.Data))
	st, err := s.StreamContext(context.Background(), "SELECT {n:UInt8} + 1", "TabSeparated", params)
	require.NoError(t, err)
	c, err := st.Next()
	require.NoError(t, err)
	require.Equal(t, "42\n", string(c))
	st.Close()
}
