package main

// CPU and memory of the pipeline's processes, sampled from /proc around a step.

import (
	"os"
	"strconv"
	"strings"
	"time"
)

type procSample struct {
	name  string
	ticks int64 // user + system clock ticks
	rss   int64 // bytes
	ok    bool
}

type procUsage struct {
	name   string
	cpu    float64 // cores
	rssMiB float64
}

const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux

func sampleProcs(specs []string) []procSample {
	var out []procSample
	for _, s := range specs {
		name, pidfile, _ := strings.Cut(s, "=")
		ps := procSample{name: name}
		if data, err := os.ReadFile(pidfile); err == nil {
			pid := strings.TrimSpace(string(data))
			if pid == "self" {
				pid = strconv.Itoa(os.Getpid())
			}
			ps.ticks, ps.rss, ps.ok = readProc(pid)
		} else if pidfile == "self" {
			ps.ticks, ps.rss, ps.ok = readProc(strconv.Itoa(os.Getpid()))
		}
		out = append(out, ps)
	}
	return out
}

// readProc reads a process's CPU ticks (/proc/PID/stat fields 14 and 15) and resident memory.
func readProc(pid string) (int64, int64, bool) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 22 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	rssPages, _ := strconv.ParseInt(fields[21], 10, 64)
	return utime + stime, rssPages * int64(os.Getpagesize()), true
}

func usage(before, after []procSample, d time.Duration) []procUsage {
	var out []procUsage
	for i := range before {
		if !before[i].ok || !after[i].ok {
			continue
		}
		out = append(out, procUsage{name: before[i].name,
			cpu:    float64(after[i].ticks-before[i].ticks) / clkTck / d.Seconds(),
			rssMiB: float64(after[i].rss) / (1 << 20)})
	}
	return out
}

// ---- output ----
