package app_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/ingest/internal/proctest"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// The overload test runs the ingest binary as a process of its own, as an operator would,
// and measures its resident memory from /proc while 64 clients each post 15 MiB (decoded)
// at once. VIGIE_TEST_INGEST_BIN names a binary to test instead of the one built from this
// module (e.g. an older build, to compare).

const (
	overloadRequests   = 64
	overloadEvents     = 1000     // limits.max_events, the default
	overloadBodyBytes  = 15 << 20 // decoded, below limits.max_body_bytes (16 MiB)
	overloadPeakRSSMB  = 300
	overloadSettleTime = 60 * time.Second
)

// ingestBinary builds cmd/ingest (or returns VIGIE_TEST_INGEST_BIN).
func ingestBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("VIGIE_TEST_INGEST_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "ingest")
	// Without -race even when the test runs with it: what is measured is the binary shipped.
	out, err := exec.Command("go", "build", "-o", bin, "github.com/vigie/vigie/services/ingest/cmd/ingest").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// startProcess runs bin with topics and credentials of its own, extra in its environment,
// until the test ends.
func startProcess(t *testing.T, bin string, sensors []string, extra ...string) *proctest.Process {
	t.Helper()
	p, err := proctest.Start(proctest.Options{Bin: bin, Env: extra, Brokers: testenv.KafkaBrokers(t), Sensors: sensors,
		RawTopic: testenv.Name(t, "raw"), DLQTopic: testenv.Name(t, "dlq"), Partitions: 3})
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("ingest stderr:\n%s", p.Stderr())
		}
	})
	return p
}

// memory is what /proc/<pid>/status says of the process's resident set, in MB.
type memory struct{ rss, hwm float64 }

func memoryOf(t *testing.T, p *proctest.Process) memory {
	rss, hwm, err := p.Memory()
	require.NoError(t, err)
	return memory{rss, hwm}
}

// paddedBody streams the NDJSON body of lines, each padded with spaces before its closing
// brace to lineBytes (newline included), the first line also taking what is left up to
// total: valid events, of the size of the largest ones the limits allow.
type paddedBody struct {
	lines     [][]byte
	lineBytes int
	total     int
	i, off    int // line, offset in the padded line
	cur       []byte
}

func newPaddedBody(lines [][]byte, total int) *paddedBody {
	return &paddedBody{lines: lines, lineBytes: total / len(lines), total: total}
}

func (b *paddedBody) line(i int) []byte {
	size := b.lineBytes
	if i == 0 {
		size += b.total - b.lineBytes*len(b.lines)
	}
	l := b.lines[i]
	out := make([]byte, 0, size)
	out = append(out, l[:len(l)-1]...)
	out = append(out, bytes.Repeat([]byte{' '}, size-len(l)-1)...)
	return append(out, '}', '\n')
}

func (b *paddedBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if b.cur == nil || b.off == len(b.cur) {
			if b.i == len(b.lines) {
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
			b.cur, b.off = b.line(b.i), 0
			b.i++
		}
		c := copy(p[n:], b.cur[b.off:])
		b.off += c
		n += c
	}
	return n, nil
}

// memberWriter gzip-compresses padded bodies fast: one gzip member (RFC 1952 allows many in
// a row; gzip readers read them as one stream) per event, stored as it is, and one per run of
// padding, compressed once for each length. Compressing 15 MiB of spaces every time would
// take most of the test's time under the race detector.
type memberWriter struct {
	stored, packed *gzip.Writer
	buf            bytes.Buffer
	paddings       map[int][]byte
}

func newMemberWriter(t *testing.T) *memberWriter {
	stored, err := gzip.NewWriterLevel(nil, gzip.NoCompression)
	require.NoError(t, err)
	packed, err := gzip.NewWriterLevel(nil, gzip.BestCompression)
	require.NoError(t, err)
	return &memberWriter{stored: stored, packed: packed, paddings: map[int][]byte{}}
}

func (m *memberWriter) member(t *testing.T, zw *gzip.Writer, data []byte) []byte {
	m.buf.Reset()
	zw.Reset(&m.buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return bytes.Clone(m.buf.Bytes())
}

func (m *memberWriter) compress(t *testing.T, b *paddedBody) []byte {
	var out []byte
	for i := range b.lines {
		line := b.line(i)
		end := len(b.lines[i]) - 1 // the event up to its closing brace; then padding, "}\n"
		out = append(out, m.member(t, m.stored, line[:end])...)
		pad, ok := m.paddings[len(line)-end]
		if !ok {
			pad = m.member(t, m.packed, line[end:])
			m.paddings[len(line)-end] = pad
		}
		out = append(out, pad...)
	}
	return out
}

// overloadRequest is one client's request: its events, and the gzip body when it sends one.
type overloadRequest struct {
	sensor string
	lines  [][]byte
	ids    []string
	gz     []byte // the gzip-compressed padded body, if it sends that
	plain  []byte // the lines as they are, if it sends that (the warm-up)
}

func (r *overloadRequest) http(t *testing.T, url, token string) *http.Request {
	var req *http.Request
	var err error
	switch {
	case r.plain != nil:
		req, err = http.NewRequest(http.MethodPost, url, bytes.NewReader(r.plain))
	case r.gz != nil:
		req, err = http.NewRequest(http.MethodPost, url, bytes.NewReader(r.gz))
		req.Header.Set("Content-Encoding", "gzip")
	default:
		req, err = http.NewRequest(http.MethodPost, url, newPaddedBody(r.lines, overloadBodyBytes))
		req.ContentLength = overloadBodyBytes
	}
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// outcome counts the answers a client got before its 200.
type outcome struct {
	mu        sync.Mutex
	codes     map[int]int
	netErrors int
	body      map[string]int // error bodies of refusals, by text
}

func (o *outcome) add(code int, body string, netErr bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if netErr {
		o.netErrors++
		return
	}
	o.codes[code]++
	if code != http.StatusOK {
		o.body[strconv.Itoa(code)+" "+body]++
	}
}

// send posts r until it is answered 200, as a sensor does: honouring Retry-After on 429 and
// 503, retrying network errors after a second. It returns the 200's batch result.
func send(t *testing.T, client *http.Client, p *proctest.Process, r *overloadRequest, out *outcome, deadline time.Time) (server.Response, error) {
	for time.Now().Before(deadline) {
		resp, err := client.Do(r.http(t, p.URL, p.Tokens[r.sensor]))
		if err != nil {
			out.add(0, "", true)
			time.Sleep(time.Second)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			out.add(0, "", true)
			time.Sleep(time.Second)
			continue
		}
		out.add(resp.StatusCode, string(bytes.TrimSpace(b)), false)
		switch resp.StatusCode {
		case http.StatusOK:
			var res server.Response
			if err := json.Unmarshal(b, &res); err != nil {
				return res, fmt.Errorf("200 answer %q: %w", b, err)
			}
			return res, nil
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || wait < 1 {
				return server.Response{}, fmt.Errorf("%d without a Retry-After in seconds (%q): %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
			time.Sleep(time.Duration(wait) * time.Second)
		default:
			return server.Response{}, fmt.Errorf("answer %d: %s", resp.StatusCode, b)
		}
	}
	return server.Response{}, fmt.Errorf("not answered 200 before the deadline")
}

// TestOverloadBoundedMemory: 64 clients post 15 MiB (decoded) bodies at once, a quarter of
// them gzip-compressed, to the ingest binary with its default limits. Its resident memory
// stays at most 300 MB, comes back near its idle size after, and every event is in Kafka
// exactly once once each client, retrying as told, got its 200.
func TestOverloadBoundedMemory(t *testing.T) {
	t0 := time.Now()
	bin := ingestBinary(t)
	built := time.Since(t0)
	sensors := make([]string, 8)
	for i := range sensors {
		sensors[i] = fmt.Sprintf("cp-overload-%02d", i)
	}
	// The sensors' rate limit is not what is tested here; bodies of 15 MiB are let in as sent
	// too (limits.max_wire_bytes is 8 MiB by default).
	p := startProcess(t, bin, sensors, "VIGIE_INGEST_RATE_EVENTS_PER_SECOND=1000000", "VIGIE_INGEST_RATE_BURST=1000000",
		"VIGIE_INGEST_LIMITS_MAX_WIRE_BYTES="+strconv.Itoa(16<<20))

	// The events of each sensor are made once; each request has them with event ids of its
	// own (the same length, so the same padding).
	events, ids := map[string][][]byte{}, map[string][]string{}
	for _, sensor := range sensors {
		events[sensor], ids[sensor] = radioEvents(t, sensor, "overload-xx", overloadEvents)
	}
	gz := newMemberWriter(t)
	reqs := make([]*overloadRequest, overloadRequests)
	for i := range reqs {
		r := &overloadRequest{sensor: sensors[i%len(sensors)]}
		prefix := fmt.Sprintf("overload-%02d-", i)
		for j, l := range events[r.sensor] {
			r.lines = append(r.lines, bytes.Replace(l, []byte(`"overload-xx-`), []byte(`"`+prefix), 1))
			r.ids = append(r.ids, strings.Replace(ids[r.sensor][j], "overload-xx-", prefix, 1))
		}
		if i%4 == 3 {
			r.gz = gz.compress(t, newPaddedBody(r.lines, overloadBodyBytes))
		}
		reqs[i] = r
	}
	prepared := time.Since(t0)
	// Idle: ready, and one small request served (what every process has before a burst).
	small, _ := makeEvents(t, sensors[0], "overload-warmup", 10)
	res, err := send(t, http.DefaultClient, p, &overloadRequest{sensor: sensors[0], plain: ndjson(small)}, &outcome{codes: map[int]int{}, body: map[string]int{}}, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	require.Equal(t, 10, res.Accepted)
	idle := memoryOf(t, p)

	// The sampler: the largest VmRSS seen, every 20 ms.
	var peak atomic.Int64 // kB
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				m := memoryOf(t, p)
				if kb := int64(m.rss * 1024); kb > peak.Load() {
					peak.Store(kb)
				}
			}
		}
	}()

	gzSize := 0
	for _, r := range reqs {
		gzSize = max(gzSize, len(r.gz))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: overloadRequests}}
	out := &outcome{codes: map[int]int{}, body: map[string]int{}}
	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	results := make([]server.Response, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = send(t, client, p, r, out, deadline)
		}()
	}
	wg.Wait()
	load := time.Since(start)
	close(stop)
	<-sampled
	during := memoryOf(t, p)
	t.Logf("load: %d requests of %d MiB (decoded; %d gzip, %d bytes sent each) in %s; answers before the 200s: %v, network errors %d",
		len(reqs), overloadBodyBytes>>20, len(reqs)/4, gzSize, load.Round(time.Millisecond), out.codes, out.netErrors)
	for body, n := range out.body {
		t.Logf("  %dx %s", n, body)
	}
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}

	// After: back near the idle size.
	settle := time.Now()
	var after memory
	for {
		after = memoryOf(t, p)
		if after.rss <= idleBound(idle.rss) || time.Since(settle) > overloadSettleTime {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("rss MB: idle %.1f, peak sampled %.1f, VmHWM %.1f (limit %d); after the load %.1f, %.1f s later (bound %.1f)",
		idle.rss, float64(peak.Load())/1024, during.hwm, overloadPeakRSSMB, after.rss, time.Since(settle).Seconds(), idleBound(idle.rss))
	vals, err := p.Metrics()
	require.NoError(t, err)
	for series, v := range vals {
		if strings.HasPrefix(series, "vigie_ingest_overloaded") || strings.HasPrefix(series, "vigie_ingest_memory_trims") {
			t.Logf("  %s %g", series, v)
		}
	}

	// Every event of every request in Kafka exactly once.
	accepted := 0
	for i, r := range results {
		require.Equal(t, overloadEvents, r.Accepted+r.Duplicates, "request %d: %+v", i, r)
		require.Zero(t, r.Rejected, "request %d: %+v", i, r)
		accepted += r.Accepted
	}
	loaded := time.Since(t0)
	got := eventIDs(t, readAll(t, testenv.KafkaBrokers(t), p.RawTopic()))
	t.Logf("times from the start: built %s, requests prepared %s, load done and memory settled %s, Kafka read %s",
		built.Round(time.Second), prepared.Round(time.Second), loaded.Round(time.Second), time.Since(t0).Round(time.Second))
	for _, r := range reqs {
		for _, id := range r.ids {
			require.Equal(t, 1, got[id], "event %s is in Kafka exactly once", id)
		}
	}
	require.Len(t, got, overloadRequests*overloadEvents+len(small), "no other event in the topic")
	require.Equal(t, overloadRequests*overloadEvents, accepted, "each event answered accepted once")

	require.LessOrEqual(t, during.hwm, float64(overloadPeakRSSMB), "peak resident memory (VmHWM) in MB")
	require.LessOrEqual(t, after.rss, idleBound(idle.rss), "resident memory in MB after the load, within %s", overloadSettleTime)
}

// radioEvents returns n events of makeEvents of the MAS radio kinds only, which the
// pipeline's fast path validates: what the test measures is memory, and the schema library's cost on
// 15 KiB of padding would only make it slower.
func radioEvents(t *testing.T, sensor, prefix string, n int) ([][]byte, []string) {
	lines, ids := makeEvents(t, sensor, prefix, 2*n)
	var outLines [][]byte
	var outIDs []string
	for i, l := range lines {
		var e struct{ Kind string }
		require.NoError(t, json.Unmarshal(l, &e))
		switch e.Kind {
		case "mas_attach", "call_attempt", "sms_attempt", "data_attempt":
			outLines, outIDs = append(outLines, l), append(outIDs, ids[i])
		}
		if len(outLines) == n {
			break
		}
	}
	require.Len(t, outLines, n)
	return outLines, outIDs
}

// idleBound is how near its idle size the process must come back: within 25 MB or a
// quarter. (Without giving memory back after a burst, an idle process stays near its peak
// for two minutes or more.)
func idleBound(idle float64) float64 { return idle + max(25, idle/4) }
