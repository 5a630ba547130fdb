package dedup_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/ingest/internal/dedup"
)

func TestWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	w := dedup.New(10*time.Minute, func() time.Time { return now })
	a, b := w.Key("s1", "e1"), w.Key("s2", "e1")
	require.NotEqual(t, a, b)
	require.NotEqual(t, w.Key("s1", "e1x"), w.Key("s1e", "1x"), "separator between the fields")
	ea := dedup.Entry{Key: a, Content: 7}

	require.Equal(t, dedup.Fresh, w.Reserve(ea))
	require.Equal(t, dedup.Pending, w.Reserve(ea))
	require.Equal(t, dedup.Pending, w.Reserve(dedup.Entry{Key: a, Content: 8}), "in flight: retry, whatever the content")
	w.Release([]dedup.Entry{ea})
	require.Equal(t, dedup.Fresh, w.Reserve(ea), "released: a retry produces it")
	w.Commit([]dedup.Entry{ea})
	require.Equal(t, dedup.Done, w.Reserve(ea))
	require.Equal(t, dedup.Conflict, w.Reserve(dedup.Entry{Key: a, Content: 8}), "same identity, other content")

	for _, step := range []struct {
		advance time.Duration
		want    dedup.State
	}{
		{9 * time.Minute, dedup.Done},
		{2 * time.Minute, dedup.Done},                // 11 min
		{time.Minute - time.Millisecond, dedup.Done}, // just under 12 min: at most window × 6/5
		{time.Millisecond, dedup.Fresh},              // 12 min: forgotten
	} {
		now = now.Add(step.advance)
		require.Equal(t, step.want, w.Reserve(ea), "after %s", step.advance)
		if step.want == dedup.Fresh {
			w.Release([]dedup.Entry{ea})
		}
	}
	eb := dedup.Entry{Key: b, Content: 1}
	require.Equal(t, dedup.Fresh, w.Reserve(eb))
	w.Commit([]dedup.Entry{eb})
	require.Equal(t, 1, w.Len())
}

func TestLearn(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	w := dedup.New(10*time.Minute, func() time.Time { return now })
	old := dedup.Entry{Key: w.Key("s", "old"), Content: 1}
	recent := dedup.Entry{Key: w.Key("s", "recent"), Content: 2}
	require.False(t, w.Learn(old, now.Add(-10*time.Minute-time.Millisecond)), "beyond the window")
	require.True(t, w.Learn(recent, now.Add(-9*time.Minute)))
	require.False(t, w.Learn(dedup.Entry{Key: recent.Key, Content: 3}, now), "known: the first content stays")
	require.Equal(t, dedup.Fresh, w.Reserve(old))
	require.Equal(t, dedup.Done, w.Reserve(recent))
	require.Equal(t, dedup.Conflict, w.Reserve(dedup.Entry{Key: recent.Key, Content: 3}))

	// Remembered for the window after it was produced, not after it was learnt.
	now = now.Add(time.Minute - time.Millisecond)
	require.Equal(t, dedup.Done, w.Reserve(recent), "just under 10 min after it was produced")
	now = now.Add(2*time.Minute + time.Millisecond)
	require.Equal(t, dedup.Fresh, w.Reserve(recent), "12 min after: forgotten")

	// A reservation in flight does not stop what the log says.
	p := dedup.Entry{Key: w.Key("s", "pending"), Content: 4}
	require.Equal(t, dedup.Fresh, w.Reserve(p))
	require.True(t, w.Learn(p, now))
	w.Release([]dedup.Entry{p})
	require.Equal(t, dedup.Done, w.Reserve(p))
}

func TestContent(t *testing.T) {
	w := dedup.New(10*time.Minute, time.Now)
	a := w.Content([]byte(`{"event_id":"e1","sensor_id":"s","kind":"rf_burst","received_at":"2026-11-25T09:00:00.000Z"}`))
	require.Equal(t, a, w.Content([]byte(`{"event_id":"e1","sensor_id":"s","kind":"rf_burst","received_at":"2026-12-01T10:11:12.131Z"}`)),
		"received_at is not content")
	require.NotEqual(t, a, w.Content([]byte(`{"event_id":"e1","sensor_id":"s","kind":"mas_attach","received_at":"2026-11-25T09:00:00.000Z"}`)))
	require.NotEqual(t, a, w.Content([]byte(`{"event_id":"e1","sensor_id":"s","zone":"a\",\"received_at\":","kind":"rf_burst","received_at":"2026-11-25T09:00:00.000Z"}`)),
		"an escaped lookalike inside a string is content")
}

func BenchmarkReserveCommit(b *testing.B) {
	w := dedup.New(10*time.Minute, time.Now)
	b.ReportAllocs()
	i := 0
	e := make([]dedup.Entry, 1)
	for b.Loop() {
		e[0] = dedup.Entry{Key: w.Key("cp-aix-luynes-mas-01", "01JDQ4M5N8X7K2T3V9W0YZAB1C"+strconv.Itoa(i)), Content: uint32(i)}
		w.Reserve(e[0])
		w.Commit(e)
		i++
	}
}

// BenchmarkMemoryPerEntry reports the heap held per remembered identity (1 M entries).
func BenchmarkMemoryPerEntry(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := dedup.New(10*time.Minute, time.Now)
		const n = 1 << 20
		e := make([]dedup.Entry, 1)
		for i := range n {
			e[0] = dedup.Entry{Key: w.Key("cp-aix-luynes-mas-01", strconv.Itoa(i)), Content: uint32(i)}
			w.Reserve(e[0])
			w.Commit(e)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(w)
	}
}
