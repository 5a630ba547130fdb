package main

// The benchmark's Markdown table and the machine it ran on.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func fmtD(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func markdown(cfg *Config, rs []stepResult, took time.Duration) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Vigie pipeline benchmark — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %s, %s, %d cores, %s memory (host %s). Shared with whatever else ran at the time: load average at the end %s.\n\n",
		cpuModel(), goos(), numCPU(), memTotal(), host, loadAvg())
	fmt.Fprintf(&b, "Every service once (ingest, enricher, writer, correlator), one Kafka broker, the local chDB-based ClickHouse server, all on this machine; "+
		"steps of %s at rising rates, stopping once the pipeline falls behind. Events: steady traffic from %d contraband phones (MAS attempts with IMEI/IMSI, RF bursts) "+
		"observed at the time they are sent; every second a probe (one new IMEI at two facilities more than 300 km apart) whose rows and IMPOSSIBLE_TRAVEL alert are polled every 200 ms. "+
		"Latencies run from the probe's observation (= sending) to the first poll that sees it. Took %s.\n\n", cfg.Step, cfg.Phones, took.Round(time.Second))
	b.WriteString("| target events/s | sustained events/s | rows behind at end | drained within | detection→queryable p50 / p99 | detection→alert p50 / p99 | probes alerted |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d | %.0f | %d | %s | %s / %s | %s / %s | %d / %d |\n", r.rate, r.sustained(), r.accepted-r.rowsAtEnd,
			drained(r), fmtD(pct(r.queryable, 0.5)), fmtD(pct(r.queryable, 0.99)), fmtD(pct(r.alerted, 0.5)), fmtD(pct(r.alerted, 0.99)), len(r.alerted), r.probes)
	}
	b.WriteString("\nCPU (cores) and resident memory (MiB) per process during each step:\n\n")
	var names []string
	for _, r := range rs {
		for _, u := range r.procs {
			if !slices.Contains(names, u.name) {
				names = append(names, u.name)
			}
		}
	}
	b.WriteString("| target events/s |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s |", n)
	}
	b.WriteString("\n|---:|" + strings.Repeat("---:|", len(names)) + "\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d |", r.rate)
		for _, n := range names {
			cell := "n/a"
			for _, u := range r.procs {
				if u.name == n {
					cell = fmt.Sprintf("%.2f / %.0f", u.cpu, u.rssMiB)
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func drained(r stepResult) string {
	if r.rowsDrained < r.accepted {
		return fmt.Sprintf("not in %s (%d left)", r.drainTime.Round(time.Second), r.accepted-r.rowsDrained)
	}
	return r.drainTime.Round(100 * time.Millisecond).String()
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.0f GiB", kb/(1<<20))
		}
	}
	return "unknown"
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func goos() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "linux"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "linux"
}
