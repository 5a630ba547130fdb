package dedup_test

import (
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
		{2 * time.Minute, dedup.Done},   // 11 min: in the previous generation
		{8 * time.Minute, dedup.Done},   // 19 min: still there
		{12 * time.Minute, dedup.Fresh}, // 31 min: forgotten
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
