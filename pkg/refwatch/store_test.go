package refwatch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, reftest.WriteDir(dir, reftest.Options{Seed: 1}))
	s, err := New(dir, schemaref.FS, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	return s, dir
}

func runStore(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 50*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func reloads(s *Store, result string) float64 {
	return testutil.ToFloat64(s.metrics.reloads.WithLabelValues(result))
}

func appendLine(t *testing.T, dir, name, line string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	tmp := filepath.Join(dir, ".tmp-"+name)
	require.NoError(t, os.WriteFile(tmp, append(b, []byte(line)...), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func TestReloadOnFileChange(t *testing.T) {
	s, dir := newStore(t)
	var mu sync.Mutex
	var seen []string
	s.OnChange(func(snap *reference.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, snap.Version())
	})
	v1 := s.Current().Version()
	runStore(t, s)

	appendLine(t, dir, reference.TACFile, "21999999,Zanco,tiny t1,,,,,,yes,\n")
	require.Eventually(t, func() bool { return s.Current().Version() != v1 }, 10*time.Second, 5*time.Millisecond)
	m, ok := s.Current().Model("21999999")
	require.True(t, ok)
	require.True(t, m.Mini)
	require.Eventually(t, func() bool { return reloads(s, ResultOK) == 1 }, time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Equal(t, []string{v1, s.Current().Version()}, seen)
	mu.Unlock()

	// A broken file is refused and the version in use stays.
	v2 := s.Current().Version()
	appendLine(t, dir, reference.TACFile, "2199,Zanco,short,,,,,,,\n")
	require.Eventually(t, func() bool { return reloads(s, ResultError) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, v2, s.Current().Version())
	require.ErrorContains(t, s.LastError(), "refused, version "+v2+" stays in use")
	require.ErrorContains(t, s.LastError(), `tac.csv:`)
	require.ErrorContains(t, s.LastError(), `:1 (column tac): "2199" is not a TAC (exactly 8 digits)`)

	// Files that are not reference files do not trigger a reload.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
	// Fixing the file brings a new version in.
	b, err := os.ReadFile(filepath.Join(dir, reference.TACFile))
	require.NoError(t, err)
	fixed := b[:len(b)-len("2199,Zanco,short,,,,,,,\n")]
	require.NoError(t, os.WriteFile(filepath.Join(dir, reference.TACFile), fixed, 0o644))
	require.Eventually(t, func() bool { return s.LastError() == nil }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, v2, s.Current().Version(), "same content as before the broken write")
}

func TestNewRefusesBrokenData(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, reftest.WriteDir(dir, reftest.Options{Seed: 1}))
	appendLine(t, dir, reference.SensorsFile, "ma-nowhere.rf-001,ma-nowhere,A,0,yard,y,0,0,rf_detector,v\n")
	_, err := New(dir, schemaref.FS, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.ErrorContains(t, err, `sensors.csv:`)
	require.ErrorContains(t, err, `:2 (column facility_id): unknown facility "ma-nowhere"`)
}

func TestEmbeddedDefault(t *testing.T) {
	s, err := New("", schemaref.FS, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, 176, s.Current().Stats().Facilities)
	result, err := s.Reload()
	require.NoError(t, err)
	require.Equal(t, ResultUnchanged, result)
}
