package batch_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/ingest/internal/batch"
)

var lim = batch.Limits{MaxBodyBytes: 1 << 16, MaxEvents: 5, MaxEventBytes: 300}

func TestSplit(t *testing.T) {
	long := `{"zone":"` + strings.Repeat("x", 400) + `"}`
	for _, tc := range []struct {
		name  string
		body  string
		err   error
		lines []int
		errs  []error
	}{
		{"ndjson", "{\"a\":1}\n{\"a\":2}\n", nil, []int{1, 2}, []error{nil, nil}},
		{"crlf and blank lines", "\r\n{\"a\":1}\r\n\r\n  {\"a\":2}  \r\n", nil, []int{2, 4}, []error{nil, nil}},
		{"no final newline", `{"a":1}`, nil, []int{1}, []error{nil}},
		{"bom", "\ufeff{\"a\":1}", nil, []int{1}, []error{nil}},
		{"array then more lines", "[1]\n1\n\"s\"", batch.ErrMalformed, nil, nil},
		{"not objects in ndjson", "1\n\"s\"\n", nil, []int{1, 2}, []error{batch.ErrNotObject, batch.ErrNotObject}},
		{"too large event", long + "\n{}", nil, []int{1, 2}, []error{batch.ErrEventTooLarge, nil}},
		{"array", `[{"a":1}, {"a":2}]`, nil, []int{0, 0}, []error{nil, nil}},
		{"array of non-objects", `[1, {"a":2}]`, nil, []int{0, 0}, []error{batch.ErrNotObject, nil}},
		{"broken array", `[{"a":1}, {"a"`, batch.ErrMalformed, nil, nil},
		{"array then garbage", `[{"a":1}] x`, batch.ErrMalformed, nil, nil},
		{"too many", strings.Repeat("{}\n", 6), batch.ErrTooManyEvents, nil, nil},
		{"too many in array", "[" + strings.Repeat("{},", 5) + "{}]", batch.ErrTooManyEvents, nil, nil},
		{"empty", "", nil, []int{}, []error{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var items []batch.Item
			err := batch.Split([]byte(tc.body), lim, &items)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.lines == nil {
				return
			}
			require.Len(t, items, len(tc.lines))
			for i, it := range items {
				require.Equal(t, i, it.Pos)
				require.Equal(t, tc.lines[i], it.Line)
				require.Equal(t, tc.errs[i], it.Err)
			}
		})
	}
}

func TestReadGzipAndLimits(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("{\"a\":1}\n{\"a\":2}\n"))
	require.NoError(t, zw.Close())
	b, err := batch.Read(bytes.NewReader(gz.Bytes()), true, lim, 0, nil)
	require.NoError(t, err)
	require.Len(t, b.Items, 2)
	b.Release()

	// A gzip bomb: 1 MiB of zeros compresses to about 1 KiB; it stops at MaxBodyBytes.
	gz.Reset()
	zw = gzip.NewWriter(&gz)
	_, _ = zw.Write(make([]byte, 1<<20))
	require.NoError(t, zw.Close())
	_, err = batch.Read(bytes.NewReader(gz.Bytes()), true, lim, 0, nil)
	require.ErrorIs(t, err, batch.ErrTooLarge)

	_, err = batch.Read(strings.NewReader("not gzip"), true, lim, 0, nil)
	require.ErrorIs(t, err, batch.ErrMalformed)
}

// TestReadReservesWhatItGrows: the buffer starts at the size given and grows only with what
// reserve accepted, never beyond MaxBodyBytes; a refusal of reserve ends the read with its
// error.
func TestReadReservesWhatItGrows(t *testing.T) {
	body := strings.Repeat("{\"a\":1}\n", 5000) // 40,000 bytes
	lim := batch.Limits{MaxBodyBytes: 1 << 16, MaxEvents: 5000, MaxEventBytes: 300}
	for _, tc := range []struct {
		name  string
		size  int64
		gz    bool
		grown bool
	}{
		{"exact size: no growth", int64(len(body)), false, false},
		{"size too small", 1000, false, true},
		{"no size", 0, false, true},
		{"gzip from an estimate", 10000, true, true},
		{"size beyond the limit", 1 << 20, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(body)
			if tc.gz {
				var gz bytes.Buffer
				zw := gzip.NewWriter(&gz)
				_, _ = zw.Write(data)
				require.NoError(t, zw.Close())
				data = gz.Bytes()
			}
			var reserved int64
			b, err := batch.Read(bytes.NewReader(data), tc.gz, lim, tc.size, func(n int64) error {
				reserved += n
				return nil
			})
			require.NoError(t, err)
			require.Len(t, b.Items, 5000)
			require.Equal(t, tc.grown, reserved > 0)
			require.Equal(t, batch.Capacity(tc.size, lim)+reserved, b.Cap(), "the buffer is what was expected and reserved")
			require.LessOrEqual(t, b.Cap(), lim.MaxBodyBytes)
			b.Release()
		})
	}

	refused := errors.New("no more bytes")
	calls := 0
	_, err := batch.Read(strings.NewReader(body), false, lim, 1000, func(int64) error {
		calls++
		if calls == 3 {
			return refused
		}
		return nil
	})
	require.ErrorIs(t, err, refused)

	// Beyond MaxBodyBytes: too large, whatever was reserved.
	_, err = batch.Read(strings.NewReader(strings.Repeat("{}\n", 1<<15)), false, lim, 0, func(int64) error { return nil })
	require.ErrorIs(t, err, batch.ErrTooLarge)
}

func TestCheckMediaType(t *testing.T) {
	for _, tc := range []struct {
		ct, ce string
		gz     bool
		ok     bool
	}{
		{"application/x-ndjson", "", false, true},
		{"application/json; charset=utf-8", "gzip", true, true},
		{"application/jsonl", "identity", false, true},
		{"", "", false, true},
		{"text/plain", "", false, false},
		{"application/json; charset=latin1", "", false, false},
		{"application/json", "br", false, false},
		{"application/json;;", "", false, false},
	} {
		gz, err := batch.CheckMediaType(tc.ct, tc.ce)
		if !tc.ok {
			require.ErrorIs(t, err, batch.ErrUnsupportedMediaType, tc.ct+" "+tc.ce)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.gz, gz)
	}
}

// FuzzRead feeds any bytes, plain or as gzip data, expected at any size, to the body
// reader: it never panics, never returns more than MaxEvents items, items are numbered in
// order, and the buffer is what was expected and reserved, within MaxBodyBytes.
func FuzzRead(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"a\":2}\n"), false, uint32(0))
	f.Add([]byte(`[{"a":1},{"a":[[[[[[[[[[]]]]]]]]]]}]`), false, uint32(20))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), true, uint32(1<<20))
	f.Add([]byte("{\"a\":\"\xff\xfe\"}"), false, uint32(3))
	f.Fuzz(func(t *testing.T, data []byte, gz bool, size uint32) {
		var reserved int64
		b, err := batch.Read(bytes.NewReader(data), gz, lim, int64(size), func(n int64) error {
			require.Positive(t, n)
			reserved += n
			return nil
		})
		if err != nil {
			return
		}
		require.Equal(t, batch.Capacity(int64(size), lim)+reserved, b.Cap())
		require.LessOrEqual(t, b.Cap(), lim.MaxBodyBytes)
		defer b.Release()
		require.LessOrEqual(t, len(b.Items), lim.MaxEvents)
		for i, it := range b.Items {
			require.Equal(t, i, it.Pos)
			require.NotEmpty(t, it.Data)
		}
	})
}
