// Command simbench measures the whole pipeline at steady rates: it sends detector events in
// real time through ingest, raising the rate step by step until the pipeline falls behind,
// and for each step reports the sustained rate, the detection-to-queryable and
// detection-to-alert latencies of probe events, and the CPU and memory of every process.
// `make bench` (deploy/local/bench.sh) runs it against services started for the purpose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/app"
	"github.com/vigie/vigie/services/simulator/internal/creds"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/send"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// Config is the benchmark's configuration (env VIGIE_SIMBENCH_*).
type Config struct {
	TokensFile string      `yaml:"tokens_file"`
	Ingest     send.Config `yaml:"ingest"`
	ClickHouse string      `yaml:"clickhouse"`
	Database   string      `yaml:"database"`
	// Rates are the steps, in events per second; each lasts Step. (Strings: pkg/config
	// handles lists of strings only.)
	Rates []string      `yaml:"rates"`
	Step  time.Duration `yaml:"step"`
	// Drain is how long after a step the rows may take to catch up before the next step.
	Drain time.Duration `yaml:"drain"`
	// Procs lists name=pidfile of the processes whose CPU and memory are measured.
	Procs  []string `yaml:"procs"`
	Phones int      `yaml:"phones"`
	// Out receives the results as Markdown (also printed).
	Out string              `yaml:"out"`
	Log telemetry.LogConfig `yaml:"log"`
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.TokensFile == "" || c.ClickHouse == "" || c.Database == "":
		return errors.New("tokens_file, clickhouse, database: must be set")
	case len(c.Rates) == 0 || c.Step <= 0 || c.Drain < 0:
		return errors.New("rates, step, drain: at least one rate, a positive step")
	}
	for _, r := range c.Rates {
		if n, err := strconv.Atoi(r); err != nil || n <= 0 {
			return fmt.Errorf("rates: %q is not a positive number of events per second", r)
		}
	}
	return c.Ingest.Validate("ingest")
}

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "simbench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sc := send.DefaultConfig()
	sc.Workers, sc.FlushAfter = 16, 250*time.Millisecond
	cfg := &Config{Ingest: sc, Database: "vigie_bench", Rates: []string{"2000", "5000", "10000", "20000", "35000", "50000"},
		Step: 60 * time.Second, Drain: 30 * time.Second, Phones: 20000, ClickHouse: os.Getenv("CLICKHOUSE_ADDR"),
		Log: telemetry.LogConfig{Format: "console", Level: "warn"}}
	if err := config.Load(cfg, "VIGIE_SIMBENCH", os.Args[1:]); err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(cfg.Log, "simbench")
	if err != nil {
		return err
	}
	toks, err := creds.Load(cfg.TokensFile)
	if err != nil {
		return err
	}
	ref, err := reference.Load(refdata.FS)
	if err != nil {
		return err
	}
	w, err := world.New(ref)
	if err != nil {
		return err
	}
	conn, err := report.Open(ctx, cfg.ClickHouse, cfg.Database)
	if err != nil {
		return err
	}
	defer conn.Close()
	p := &report.Pipeline{Conn: conn, Database: cfg.Database}

	var results []stepResult
	began := time.Now()
	for i, rs := range cfg.Rates {
		rate, _ := strconv.Atoi(rs)
		runID := fmt.Sprintf("b%s", traffic.Letters(uint64(time.Now().UnixNano()/1e6)))
		st, err := traffic.NewSteady(w, uint64(i+1), runID, cfg.Phones)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "step %d: %d events/s for %s\n", i+1, rate, cfg.Step)
		r, err := measureStep(ctx, cfg, p, st, toks, rate, runID, logger)
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "  %s\n", r.line())
		if r.behind() {
			fmt.Fprintln(os.Stderr, "  the pipeline fell behind: stopping here")
			break
		}
	}
	md := markdown(cfg, results, time.Since(began))
	fmt.Print(md)
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return nil
}

// probe is one cloned-IMEI pair sent at a known time.
type probe struct {
	ids        [2]string
	at         time.Time
	queryable  time.Duration
	alerted    time.Duration
	seen, hits bool
}

type stepResult struct {
	rate        int
	sent        int64
	accepted    int64
	failed      int64
	duration    time.Duration
	rowsAtEnd   int64 // rows of the step when sending stopped
	rowsDrained int64
	drainTime   time.Duration
	queryable   []time.Duration
	alerted     []time.Duration
	probes      int
	procs       []procUsage
}

func (r stepResult) sustained() float64 { return float64(r.accepted) / r.duration.Seconds() }

// behind: the sender could not keep the rate (ingest did not take it), or ClickHouse did not
// catch up within the drain time after sending stopped (the lag grew during the step).
func (r stepResult) behind() bool {
	return r.sustained() < 0.9*float64(r.rate) || r.rowsDrained < r.accepted
}

func (r stepResult) line() string {
	return fmt.Sprintf("sustained %.0f/s (sent %d, accepted %d, failed %d); rows behind at end of sending %d; queryable p50 %s p99 %s; alert p50 %s p99 %s (%d/%d probes alerted)",
		r.sustained(), r.sent, r.accepted, r.failed, r.accepted-r.rowsAtEnd, fmtD(pct(r.queryable, 0.5)), fmtD(pct(r.queryable, 0.99)),
		fmtD(pct(r.alerted, 0.5)), fmtD(pct(r.alerted, 0.99)), len(r.alerted), r.probes)
}

func measureStep(ctx context.Context, cfg *Config, p *report.Pipeline, st *traffic.Steady, toks creds.Tokens, rate int, runID string, logger *zap.Logger) (stepResult, error) {
	res := stepResult{rate: rate}
	before := sampleProcs(cfg.Procs)
	var mu sync.Mutex
	var probes []*probe
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		pollProbes(pollCtx, p, &mu, &probes, logger)
	}()
	sender := send.New(cfg.Ingest, toks, logger)
	start := time.Now()
	_, sendErr := app.SendSteady(ctx, st, sender, rate, cfg.Step, time.Hour, func(_ string, ids [2]string, at time.Time) {
		mu.Lock()
		probes = append(probes, &probe{ids: ids, at: at})
		mu.Unlock()
	}, logger)
	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err := sender.Close(closeCtx)
	cancel()
	res.duration = time.Since(start)
	after := sampleProcs(cfg.Procs)
	if err := errors.Join(sendErr, err); err != nil {
		stopPoll()
		<-pollDone
		return res, err
	}
	s := sender.Stats()
	res.sent, res.accepted, res.failed = s.Sent, s.Accepted, s.Failed
	res.procs = usage(before, after, res.duration)
	if res.rowsAtEnd, err = p.Rows(ctx, runID); err != nil {
		stopPoll()
		<-pollDone
		return res, err
	}
	// Let the pipeline drain (and the last probes land) before the next step.
	drainStart := time.Now()
	for res.rowsDrained = res.rowsAtEnd; time.Since(drainStart) < cfg.Drain; {
		if res.rowsDrained, err = p.Rows(ctx, runID); err != nil {
			break
		}
		if res.rowsDrained >= res.accepted && allSeen(&mu, probes) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.drainTime = time.Since(drainStart)
	stopPoll()
	<-pollDone
	mu.Lock()
	defer mu.Unlock()
	res.probes = len(probes)
	for _, pr := range probes {
		if pr.seen {
			res.queryable = append(res.queryable, pr.queryable)
		}
		if pr.hits {
			res.alerted = append(res.alerted, pr.alerted)
		}
	}
	return res, nil
}

func allSeen(mu *sync.Mutex, probes []*probe) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range probes {
		if !p.seen || !p.hits {
			return false
		}
	}
	return true
}

// pollProbes looks every 200 ms for the probes' rows and alerts, and records when each was
// first seen.
func pollProbes(ctx context.Context, p *report.Pipeline, mu *sync.Mutex, probes *[]*probe, logger *zap.Logger) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mu.Lock()
		var rowIDs, alertIDs []string
		byID := map[string]*probe{}
		for _, pr := range *probes {
			if !pr.seen {
				rowIDs = append(rowIDs, pr.ids[1])
			}
			if !pr.hits {
				alertIDs = append(alertIDs, pr.ids[0], pr.ids[1])
			}
			byID[pr.ids[0]], byID[pr.ids[1]] = pr, pr
		}
		mu.Unlock()
		now := time.Now()
		if len(rowIDs) > 0 {
			ids, err := query(ctx, p, "SELECT event_id FROM `"+p.Database+"`.detections WHERE event_id IN (?)", rowIDs)
			if err != nil && ctx.Err() == nil {
				logger.Warn("poll rows", zap.Error(err))
			}
			mu.Lock()
			for _, id := range ids {
				if pr := byID[id]; pr != nil && !pr.seen {
					pr.seen, pr.queryable = true, now.Sub(pr.at)
				}
			}
			mu.Unlock()
		}
		if len(alertIDs) > 0 {
			ids, err := query(ctx, p, "SELECT arrayJoin(evidence_event_ids) FROM `"+p.Database+"`.alerts WHERE rule = 'IMPOSSIBLE_TRAVEL' AND hasAny(evidence_event_ids, ?)", alertIDs)
			if err != nil && ctx.Err() == nil {
				logger.Warn("poll alerts", zap.Error(err))
			}
			mu.Lock()
			for _, id := range ids {
				if pr := byID[id]; pr != nil && !pr.hits {
					pr.hits, pr.alerted = true, now.Sub(pr.at)
				}
			}
			mu.Unlock()
		}
	}
}

func query(ctx context.Context, p *report.Pipeline, q string, arg []string) ([]string, error) {
	rows, err := p.Conn.Query(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ---- processes ----

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
