package chdb

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEngineProbe(t *testing.T) {
	e, err := Open("", t.TempDir())
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Acquire(context.Background())
	require.NoError(t, err)
	defer s.Release()
	out, err := s.Exec("SELECT version(), timezone()")
	require.NoError(t, err)
	t.Logf("%q", out)
	_, err = s.Exec("SELECT * FROM nope")
	t.Logf("err: %v", err)
	st, err := s.Stream("SELECT number, toString(number) FROM numbers(1000000)")
	require.NoError(t, err)
	n := 0
	for {
		c, err := st.Next()
		require.NoError(t, err)
		if c == nil {
			break
		}
		cols, k := binary.Uvarint(c)
		rows, _ := binary.Uvarint(c[k:])
		if n < 5 {
			t.Logf("chunk %d: %d bytes cols=%d rows=%d", n, len(c), cols, rows)
		}
		n++
	}
	st.Close()
	t.Logf("chunks %d", n)
	out, err = s.Exec("SELECT 1 WHERE 0")
	t.Logf("empty: %q %v", out, err)
	out, err = s.Exec("SELECT number FROM numbers(200000)")
	t.Logf("materialized: %d %v", len(out), err)
}
