package chdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEngine(t *testing.T) {
	e, err := Open("", t.TempDir())
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
	e, err := Open("", t.TempDir())
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
	e, err := Open("", t.TempDir())
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
