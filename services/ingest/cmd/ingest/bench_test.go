package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/ingest/internal/app"
	"github.com/vigie/vigie/services/ingest/internal/proctest"
)

// The benchmarks run ingest as a separate process (this test binary re-executed with
// VIGIE_BENCH_INGEST_SERVER=1), so that its CPU time and resident memory are measured apart
// from the load generator, against the real broker of `make up`:
//
//	go test -run XXX -bench Ingest -benchtime 400x ./cmd/ingest
//
// Metrics: events/s (wall), events/s/core (events per second of ingest CPU time), p50 and
// p99 request latency, peak RSS of the ingest process.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIE_BENCH_INGEST_SERVER") == "1" {
		os.Exit(serve())
	}
	code := m.Run()
	benchServer.stop()
	os.Exit(code)
}

// serve is main's path (configuration from VIGIE_INGEST_*, then service.Run, which stops on
// SIGINT) with a CPU profile around it, which service.Main's exit would cut short.
func serve() int {
	if path := os.Getenv("VIGIE_BENCH_INGEST_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	cfg := app.DefaultConfig()
	if err := config.Load(cfg, service.EnvPrefix("ingest"), nil); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		return 2
	}
	if err := service.Run(context.Background(), "ingest", cfg, app.Build); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		return 1
	}
	return 0
}

const batchSize = 500

// benchSensors send the load: several sensors, so that their events spread over
// partitions as in a real deployment.
var benchSensors = []string{
	"cp-aix-luynes.batiment-b.mas-tecore-inac-01",
	"cp-aix-luynes.batiment-c.mas-tecore-inac-02",
	"ma-nice.quartier-arrivants.mas-tecore-inac-01",
	"cp-marseille.batiment-a.mas-tecore-inac-01",
}

type serverProc struct {
	once sync.Once
	err  error
	*proctest.Process
	rawTopic string
}

var benchServer serverProc

func (s *serverProc) start(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	s.once.Do(func() {
		suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
		s.rawTopic = "bench_raw_" + suffix
		s.Process, s.err = proctest.Start(proctest.Options{
			Bin: os.Args[0],
			Env: []string{"VIGIE_BENCH_INGEST_SERVER=1",
				"VIGIE_INGEST_RATE_EVENTS_PER_SECOND=10000000", "VIGIE_INGEST_RATE_BURST=10000000"},
			Brokers: brokers, Sensors: benchSensors,
			RawTopic: s.rawTopic, DLQTopic: "bench_dlq_" + suffix, Partitions: 6,
			Stderr: os.Stderr,
		})
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
}

// serverMeans returns ingest's own mean request and produce times (ms), and the memory
// trims after bursts so far, from its metrics.
func (s *serverProc) serverMeans(b *testing.B) (request, produce, trims float64) {
	vals, err := s.Metrics()
	if err != nil {
		b.Fatal(err)
	}
	mean := func(name, labels string) float64 {
		if c := vals[name+"_count"+labels]; c > 0 {
			return vals[name+"_sum"+labels] / c * 1000
		}
		return 0
	}
	return mean("vigie_ingest_request_duration_seconds", ""), mean("vigie_ingest_produce_duration_seconds", `{topic="`+s.rawTopic+`"}`), vals["vigie_ingest_memory_trims_total"]
}

func (s *serverProc) stop() {
	if s.Process != nil {
		s.Process.Stop()
	}
}

// cpuSeconds is the user+system CPU time of the ingest process.
func (s *serverProc) cpuSeconds(b *testing.B) float64 {
	sec, err := s.CPUSeconds()
	if err != nil {
		b.Fatal(err)
	}
	return sec
}

// peakRSSMB is the ingest process's high-water resident set size.
func (s *serverProc) peakRSSMB(b *testing.B) float64 {
	_, hwm, err := s.Memory()
	if err != nil {
		b.Fatal(err)
	}
	return hwm
}

// eventTemplates are realistic detector events of about 600 bytes: the attempts a managed
// access system sees, with identifiers (the benchmark's sensors are MAS sensors, which may
// post only these kinds), each with a unique event_id substituted for ID.
var eventTemplates = []string{
	`{"event_id": "ID", "sensor_id": "cp-aix-luynes.batiment-b.mas-tecore-inac-01", "observed_at": "2026-11-25T09:14:07.125Z", "kind": "mas_attach", "zone": "batiment-b-aile-est-etage-2-couloir-nord-cellules-200-a-230", "cell": "B-214", "rat": "4G", "band": "B20", "freq_mhz": 806.0, "rssi_dbm": -71.5, "outcome": "blocked", "duration_ms": 0, "imei": "3582880210421N0", "imsi": "2081501234N6789"}`,
	`{"event_id": "ID", "sensor_id": "cp-aix-luynes.batiment-b.mas-tecore-inac-01", "observed_at": "2026-11-25T09:16:41.503Z", "kind": "call_attempt", "zone": "batiment-b-aile-est-etage-2-couloir-nord-cellules-200-a-230", "cell": "B-216", "rat": "2G", "band": "GSM900", "freq_mhz": 935.2, "rssi_dbm": -64.25, "outcome": "blocked", "duration_ms": 1250, "imei": "3592806033109N0", "imsi": "2081098765N4321", "msisdn_dialed": "+33 6 12 34 N6 78"}`,
	`{"event_id": "ID", "sensor_id": "cp-aix-luynes.batiment-b.mas-tecore-inac-01", "observed_at": "2026-11-25T21:02:13.008Z", "kind": "sms_attempt", "zone": "quartier-arrivants-rez-de-chaussee-aile-sud-cellules-1-a-20", "cell": "QA-007", "rat": "3G", "band": "B1", "freq_mhz": 2140.6, "rssi_dbm": -88.0, "outcome": "blocked", "imei": "8674180155209N1", "imsi": "2082012345N6789", "msisdn_dialed": "06 98 76 N4 32"}`,
	`{"event_id": "ID", "sensor_id": "cp-aix-luynes.batiment-b.mas-tecore-inac-01", "observed_at": "2026-11-25T21:05:00.000Z", "kind": "data_attempt", "zone": "quartier-arrivants-rez-de-chaussee-aile-sud-cellules-1-a-20", "cell": "QA-009", "rat": "4G", "band": "B3", "freq_mhz": 1815.0, "rssi_dbm": -93.25, "outcome": "blocked", "duration_ms": 1200, "data_bytes": 40960, "imei": "3533251044761N8", "imsi": "2081576543N1098"}`,
}

// request is one prepared batch of one sensor.
type request struct {
	sensor string
	body   []byte
}

// prepare makes n batches, sensors taking turns.
func prepare(n int) []request {
	out := make([]request, n)
	for i := range out {
		sensor := benchSensors[i%len(benchSensors)]
		out[i] = request{sensor: sensor, body: body(seq.Add(batchSize)-batchSize, sensor)}
	}
	return out
}

// body returns a batch of batchSize events of sensor with ids seq..seq+batchSize-1 and
// identifiers varied by the sequence number.
func body(seq int64, sensor string) []byte {
	var buf bytes.Buffer
	buf.Grow(batchSize * 620)
	for i := range int64(batchSize) {
		n := seq + i
		t := eventTemplates[n%int64(len(eventTemplates))]
		id := fmt.Sprintf("tecore-inac-01:01JDQ4M5N8X7K2T3V9W0YZAB1C:%012d:attempt", n)
		t = strings.Replace(t, `"ID"`, `"`+id+`"`, 1)
		t = strings.Replace(t, benchSensors[0], sensor, 1)
		t = strings.ReplaceAll(t, "N", strconv.Itoa(int(n%10)))
		t = strings.Replace(t, "2026-11-25", yesterday, 1) // within ingest's time bounds
		buf.WriteString(t)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

var seq atomic.Int64

// yesterday dates the events: every template's time of day is then in the past, and within
// the retention window.
var yesterday = time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02")

type result struct {
	latencies []time.Duration
	events    int64
}

func post(client *http.Client, url, token string, data []byte) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("status %d", resp.StatusCode)
	}
	return d, nil
}

func report(b *testing.B, res result, wall time.Duration, cpu float64) {
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	q := func(p float64) float64 {
		return float64(res.latencies[int(p*float64(len(res.latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(res.events)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(res.events)/cpu, "events/s/core")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(benchServer.peakRSSMB(b), "peak-rss-MB")
	req, prod, trims := benchServer.serverMeans(b)
	b.ReportMetric(trims, "trims")
	b.ReportMetric(req, "server-mean-ms")
	b.ReportMetric(prod, "produce-mean-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIngestThroughput sends b.N batches of 500 events of 4 sensors from 4 concurrent
// clients as fast as ingest takes them.
func BenchmarkIngestThroughput(b *testing.B) {
	benchServer.start(b)
	const clients = 4
	reqs := prepare(b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	var mu sync.Mutex
	res := result{}
	cpu0 := benchServer.cpuSeconds(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				d, err := post(client, benchServer.URL, benchServer.Tokens[reqs[i].sensor], reqs[i].body)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				res.latencies = append(res.latencies, d)
				res.events += batchSize
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()
	report(b, res, wall, benchServer.cpuSeconds(b)-cpu0)
}

// BenchmarkIngestLatencyAt20k paces b.N batches of 500 events at 20,000 events/s (one
// request every 25 ms) and reports the latency distribution.
func BenchmarkIngestLatencyAt20k(b *testing.B) {
	benchServer.start(b)
	reqs := prepare(b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var mu sync.Mutex
	res := result{}
	cpu0 := benchServer.cpuSeconds(b)
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range b.N {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := post(client, benchServer.URL, benchServer.Tokens[reqs[i].sensor], reqs[i].body)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			res.latencies = append(res.latencies, d)
			res.events += batchSize
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()
	report(b, res, wall, benchServer.cpuSeconds(b)-cpu0)
}
