package enrich

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/pkg/refwatch"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

// BenchmarkReload measures a full reload as the enricher does it (read, validate, swap,
// compile the enrichment table) of 200 facilities × 50 sensors and 100,000 TACs,
// alternating two versions so that every reload swaps.
func BenchmarkReload(b *testing.B) {
	dir := b.TempDir()
	require.NoError(b, reftest.WriteDir(dir, reftest.Options{Facilities: 200, SensorsPerFacility: 50, TACs: 100000, Seed: 1}))
	s, err := refwatch.New(dir, schemaref.FS, zaptest.NewLogger(b), prometheus.NewRegistry())
	require.NoError(b, err)
	var tables atomic.Pointer[Table]
	s.OnChange(func(snap *reference.Snapshot) { tables.Store(Compile(snap)) })
	path := filepath.Join(dir, reference.OperatorsFile)
	v1, err := os.ReadFile(path)
	require.NoError(b, err)
	v2 := append(append([]byte(nil), v1...), []byte("999,98,,,Bench,Bench,Operational,Test,,\n")...)
	i := 0
	var cpu time.Duration
	for b.Loop() {
		data := v1
		if i%2 == 0 {
			data = v2
		}
		b.StopTimer()
		require.NoError(b, os.WriteFile(path, data, 0o644))
		b.StartTimer()
		c0 := cpuTime(b)
		result, err := s.Reload()
		cpu += cpuTime(b) - c0
		require.NoError(b, err)
		require.Equal(b, refwatch.ResultOK, result)
		i++
	}
	// CPU time (GC included) per reload: wall time depends on the neighbours.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(i), "cpu-ms/reload")
}
