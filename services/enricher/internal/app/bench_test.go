package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
)

// BenchmarkEnricherProcess runs the enricher binary against the real broker on a pre-filled
// raw topic, with 200 facilities × 50 sensors and 100,000 TACs loaded, and reports its
// throughput per second of CPU it used, its peak RSS, and, for a reload of all reference data
// in the middle of the run, the reload time and the longest pause in its output around it.
// Run with -benchtime=1x: b.N is not used, the event count is ENRICHER_BENCH_EVENTS
// (default 300,000).
func BenchmarkEnricherProcess(b *testing.B) {
	n := 300000
	if v := os.Getenv("ENRICHER_BENCH_EVENTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	bin := buildBinary(b)
	cfg, snap := benchConfig(b)
	events := reftest.Events(snap, n, 9)
	msgs, err := reftest.Marshal(events)
	require.NoError(b, err)
	produceMessages(b, cfg, events, msgs)
	events, msgs = nil, nil

	admin := freeAddr(b)
	cmd := exec.Command(bin)
	batch := strconv.Itoa(DefaultConfig().Consumer.BatchSize)
	if v := os.Getenv("ENRICHER_BENCH_BATCH"); v != "" {
		batch = v
	}
	cmd.Env = append(processEnv(cfg), EnvPrefix+"_ADMIN_LISTEN="+admin, EnvPrefix+"_CONSUMER_BATCH_SIZE="+batch, EnvPrefix+"_PRODUCER_BATCH_SIZE="+batch)
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	start := time.Now()
	require.NoError(b, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	if path := os.Getenv("ENRICHER_BENCH_CPUPROFILE"); path != "" {
		go func() {
			time.Sleep(time.Second)
			resp, err := http.Get("http://" + admin + "/debug/pprof/profile?seconds=3")
			if err != nil {
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(path)
			if err == nil {
				_, _ = io.Copy(f, resp.Body)
				_ = f.Close()
			}
		}()
	}
	// Reload all reference data once the stream is well under way: the TAC file (100,000
	// rows) changes, which makes every file load and the table compile again.
	reloaded := false
	var reloadAt time.Time
	for {
		done := enrichedCount(b, cfg)
		if !reloaded && done >= int64(n/3) {
			path := filepath.Join(cfg.Reference.Dir, reference.TACFile)
			data, err := os.ReadFile(path)
			require.NoError(b, err)
			require.NoError(b, os.WriteFile(path+".new", append(data, []byte("21999999,Bench,reload,,,,,,,\n")...), 0o644))
			require.NoError(b, os.Rename(path+".new", path))
			reloadAt = time.Now()
			reloaded = true
		}
		if done >= int64(n) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("only %d of %d enriched after 10 minutes", done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	cpu, rss := procStats(b, cmd.Process.Pid)
	metrics := scrape(b, admin)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(metrics["vigie_enricher_reference_load_seconds_sum"]*1000/max(1, metrics["vigie_enricher_reference_load_seconds_count"]), "reload-load-ms")
	require.Equal(b, float64(1), metrics[`vigie_enricher_reference_reloads_total{result="ok"}`], "the reload happened")

	gap, normal := outputGaps(b, cfg, reloadAt, n)
	b.ReportMetric(float64(gap.Milliseconds()), "max-gap-after-reload-ms")
	b.ReportMetric(float64(normal.Milliseconds()), "max-gap-elsewhere-ms")
	b.Logf("%d events in %v (includes start-up and group join), CPU %v, peak RSS %d MB", n, elapsed.Round(time.Millisecond), cpu.Round(time.Millisecond), rss>>20)
}

func benchConfig(b *testing.B) (*Config, *reference.Snapshot) {
	cfg, snap := testConfig(b, reftest.Options{Facilities: 200, SensorsPerFacility: 50, TACs: 100000, Seed: 1})
	st := snap.Stats()
	require.Equal(b, 200, st.Facilities)
	require.Equal(b, 10000, st.Sensors)
	require.Equal(b, 100000, st.TACs)
	return cfg, snap
}

func freeAddr(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	addr := ln.Addr().String()
	require.NoError(b, ln.Close())
	return addr
}

// procStats returns the CPU time (user + system) and peak RSS of a process.
func procStats(b *testing.B, pid int) (time.Duration, int64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ
	cpu := time.Duration(utime+stime) * time.Second / ticks

	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	defer f.Close()
	var rss int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	return cpu, rss
}

// scrape reads the enricher's /metrics into name{labels} → value.
func scrape(b testing.TB, addr string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(b, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b, err)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// outputGaps reads the enriched topic's message times and returns the longest gap between
// consecutive messages in the 2 s after the reload, and the longest elsewhere in the steady
// part of the run (after the first 10 % of messages).
func outputGaps(b *testing.B, cfg *Config, reloadAt time.Time, n int) (afterReload, elsewhere time.Duration) {
	c := readTopic(b, cfg, cfg.Topics.Enriched, n, 2*time.Minute, 0)
	times := make([]time.Time, len(c.msgs))
	for i, m := range c.msgs {
		times[i] = m.Time
	}
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	for i := len(times) / 10; i < len(times); i++ {
		if i == 0 {
			continue
		}
		gap := times[i].Sub(times[i-1])
		if !times[i].Before(reloadAt) && times[i-1].Before(reloadAt.Add(2*time.Second)) {
			afterReload = max(afterReload, gap)
		} else {
			elsewhere = max(elsewhere, gap)
		}
	}
	return afterReload, elsewhere
}
