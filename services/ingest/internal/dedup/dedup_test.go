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

	require.Equal(t, dedup.Fresh, w.Reserve(a))
	require.Equal(t, dedup.Pending, w.Reserve(a))
	w.Release([]uint64{a})
	require.Equal(t, dedup.Fresh, w.Reserve(a), "released: a retry produces it")
	w.Commit([]uint64{a})
	require.Equal(t, dedup.Done, w.Reserve(a))

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
		require.Equal(t, step.want, w.Reserve(a), "after %s", step.advance)
		if step.want == dedup.Fresh {
			w.Release([]uint64{a})
		}
	}
	require.Equal(t, dedup.Fresh, w.Reserve(b))
	w.Commit([]uint64{b})
	require.Equal(t, 1, w.Len())
}

func BenchmarkReserveCommit(b *testing.B) {
	w := dedup.New(10*time.Minute, time.Now)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := w.Key("cp-aix-luynes-mas-01", "01JDQ4M5N8X7K2T3V9W0YZAB1C"+string(rune(i)))
		w.Reserve(k)
		w.Commit([]uint64{k})
		i++
	}
}

// BenchmarkMemoryPerEntry reports the heap held per remembered fingerprint (1 M entries).
func BenchmarkMemoryPerEntry(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := dedup.New(10*time.Minute, time.Now)
		const n = 1 << 20
		keys := make([]uint64, 1)
		for i := range n {
			keys[0] = w.Key("cp-aix-luynes-mas-01", strconv.Itoa(i))
			w.Reserve(keys[0])
			w.Commit(keys)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(w)
	}
}
