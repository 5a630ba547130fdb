package e2e

// Ingest overloaded by its clients: floods of large bodies (many concurrent requests of 15
// MiB decoded) and slow clients (bodies trickled, bodies stalled, headers trickled). The
// events these requests carry are radio bursts without identifiers (copies of the stream's
// own, with ids of their own): they are counted end to end like the stream's, and no
// correlation rule keyed by device sees them, so the run's alerts stay those of the
// fault-free run.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// burstTemplates returns one rf_burst event without identifiers per sensor that sent one.
func burstTemplates(events []event.Detector) []event.Detector {
	seen := map[string]bool{}
	var out []event.Detector
	for _, e := range events {
		if e.Kind == "rf_burst" && e.IMEI == "" && e.IMSI == "" && !seen[e.SensorID] {
			seen[e.SensorID] = true
			out = append(out, e)
		}
	}
	return out
}

// copies returns n copies of tmpl with event ids of their own (tag and a counter in letters).
func copies(tmpl event.Detector, runID, tag string, n int) []event.Detector {
	out := make([]event.Detector, n)
	for i := range out {
		out[i] = tmpl
		out[i].EventID = fmt.Sprintf("%s-%s-%s", runID, tag, traffic.Letters(uint64(i)))
	}
	return out
}

// paddedBody is events as NDJSON, each line padded with spaces inside its object to
// lineBytes, gzip-compressed: a body of len(events) × lineBytes decoded, small on the wire.
func paddedBody(events []event.Detector, lineBytes int) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	pad := bytes.Repeat([]byte{' '}, lineBytes)
	for i := range events {
		data, err := json.Marshal(&events[i])
		if err != nil {
			return nil, err
		}
		n := lineBytes - len(data) - 1
		if n < 0 {
			return nil, fmt.Errorf("event %s is %d bytes, more than a line of %d", events[i].EventID, len(data), lineBytes)
		}
		// {"a":1,…}  ->  {"a":1,…<spaces>}
		if _, err := zw.Write(data[:len(data)-1]); err != nil {
			return nil, err
		}
		_, _ = zw.Write(pad[:n])
		_, _ = zw.Write([]byte("}\n"))
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// flood sends rounds of concurrent requests of 1,000 radio bursts each, every line padded to
// 15.7 kB (15 MiB a request decoded, under ingest's 16 MiB limit), while the stream flows;
// each round after the first sends the first's bodies again (all duplicates: the same bytes
// for ingest to read, no new rows). It notes the answers and ingest's memory after.
func (r *faultRun) flood(concurrent, rounds int) {
	t := r.t
	t.Helper()
	tmpls := burstTemplates(r.events)
	require.NotEmpty(t, tmpls, "no radio burst without identifiers in the stream")
	type req struct {
		events []event.Detector
		body   []byte
	}
	reqs := make([]req, concurrent)
	for i := range reqs {
		evs := copies(tmpls[i%len(tmpls)], r.runID, "fl"+traffic.Letters(uint64(i)), 1000)
		for j := range evs {
			r.p.ids.add(&evs[j])
		}
		body, err := paddedBody(evs, 15_700)
		require.NoError(t, err)
		reqs[i] = req{evs, body}
	}
	for round := range rounds {
		began := time.Now()
		counts := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, q := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := r.tr.postBody(r.ctx, q.events, q.body, "gzip", true)
				mu.Lock()
				for _, s := range st {
					counts[s]++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		_, rss := memoryKB(r.current()["ingest"].cmd.Process.Pid)
		r.note("flood round %d: %d requests × 15 MiB decoded at once answered in %s, answers by status %v; ingest RSS %d MB after", round+1, concurrent, time.Since(began).Round(time.Second), counts, rss>>10)
	}
	time.Sleep(10 * time.Second)
	hwm, rss := memoryKB(r.current()["ingest"].cmd.Process.Pid)
	r.note("ingest 10 s after the flood: RSS %d MB (peak %d MB)", rss>>10, hwm>>10)
}

// slowClients opens, while the stream flows, n connections of each kind: bodies trickled
// 100 bytes a second (complete in about 30 s: a bad link; their events must be answered and
// counted), bodies stalled half-way (ingest must close them, its read timeout), and headers
// trickled a byte a second (slowloris: its header timeout). It checks the stream kept being
// acknowledged meanwhile and notes how each kind ended.
func (r *faultRun) slowClients(n int) {
	t := r.t
	t.Helper()
	tmpls := burstTemplates(r.events)
	require.NotEmpty(t, tmpls)
	type outcome struct {
		kind, how string
		after     time.Duration
	}
	out := make(chan outcome, 3*n)
	before := r.tr.ackedCount()
	began := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		evs := copies(tmpls[i%len(tmpls)], r.runID, "sl"+traffic.Letters(uint64(i)), 10)
		for j := range evs {
			r.p.ids.add(&evs[j])
		}
		var body bytes.Buffer
		for j := range evs {
			data, err := json.Marshal(&evs[j])
			require.NoError(t, err)
			body.Write(data)
			body.WriteByte('\n')
		}
		wg.Add(3)
		go func() {
			defer wg.Done()
			// To the end: 10 events (about 3 kB) in 100-byte pieces a second.
			status, answer, err := r.rawPost(evs[0].SensorID, body.Bytes(), len(body.Bytes()), 100, time.Second)
			switch {
			case err != nil:
				out <- outcome{"trickled", "error: " + err.Error(), time.Since(began)}
			case status == http.StatusOK:
				r.tr.record200(evs, answer)
				out <- outcome{"trickled", "200", time.Since(began)}
			default:
				out <- outcome{"trickled", strconv.Itoa(status), time.Since(began)}
			}
		}()
		go func() {
			defer wg.Done()
			// Half the body, then nothing: never acknowledged, so never counted.
			_, _, err := r.rawPost(evs[0].SensorID, body.Bytes(), len(body.Bytes())/2, len(body.Bytes())/2, 0)
			how := "closed by ingest"
			if err != nil {
				how = err.Error()
			}
			out <- outcome{"stalled", how, time.Since(began)}
		}()
		go func() {
			defer wg.Done()
			how, err := r.slowHeaders(evs[0].SensorID)
			if err != nil {
				how = err.Error()
			}
			out <- outcome{"slow headers", how, time.Since(began)}
		}()
	}
	// The stream must go on while the slow clients hold their connections.
	time.Sleep(20 * time.Second)
	during := r.tr.ackedCount() - before
	wg.Wait()
	close(out)
	type key struct{ kind, how string }
	counts := map[key]int{}
	longest := map[string]time.Duration{}
	for o := range out {
		counts[key{o.kind, o.how}]++
		longest[o.kind] = max(longest[o.kind], o.after)
	}
	var parts []string
	for _, kind := range []string{"trickled", "stalled", "slow headers"} {
		for k, c := range counts {
			if k.kind == kind {
				parts = append(parts, fmt.Sprintf("%s: %d %s", kind, c, k.how))
			}
		}
		parts = append(parts, fmt.Sprintf("%s: last ended after %s", kind, longest[kind].Round(time.Second)))
	}
	r.note("slow clients (%d of each kind): %s; the stream had %d more acknowledgements in the first 20 s", n, strings.Join(parts, "; "), during)
	require.Positive(t, during, "no acknowledgement of the stream while slow clients held connections")
	// A trickled body is answered: 200, or refused up front (503, 429) when ingest bounds
	// what it holds in flight.
	require.Equal(t, n, counts[key{"trickled", "200"}]+counts[key{"trickled", "503"}]+counts[key{"trickled", "429"}], "trickled bodies without an answer")
	require.Equal(t, n, counts[key{"stalled", "closed by ingest"}], "stalled bodies not all closed by ingest")
	require.Equal(t, n, counts[key{"slow headers", "closed by ingest"}], "trickled headers not all closed by ingest")
}

// rawPost writes a request for body over a connection of its own: its first send bytes in
// pieces of piece bytes every gap (gap 0: at once), then, if send < len(body), waits for
// ingest to answer or close (up to 3 minutes). It returns the status and body of the answer
// when there is one, and no error when ingest closed the connection.
func (r *faultRun) rawPost(sensor string, body []byte, send, piece int, gap time.Duration) (int, []byte, error) {
	conn, err := net.DialTimeout("tcp", r.p.ingestAPI, 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n",
		r.p.ingestAPI, r.tr.tokens[sensor], len(body))
	if _, err := conn.Write([]byte(head)); err != nil {
		return 0, nil, err
	}
	for off := 0; off < send; off += piece {
		if _, err := conn.Write(body[off:min(off+piece, send)]); err != nil {
			return 0, nil, fmt.Errorf("write at %d of %d: %w", off, send, err)
		}
		if gap > 0 && off+piece < send {
			time.Sleep(gap)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if send < len(body) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
			return 0, nil, nil // closed by ingest
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, answer, nil // before the end of the body: an error status, then closed
}

// slowHeaders sends a request's headers a byte a second and says how the connection ended.
func (r *faultRun) slowHeaders(sensor string) (string, error) {
	conn, err := net.DialTimeout("tcp", r.p.ingestAPI, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 10\r\n\r\n",
		r.p.ingestAPI, r.tr.tokens[sensor])
	for i := range len(head) {
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			return "closed by ingest", nil
		}
		// A read that returns within the second means ingest answered (an error status) or
		// closed the connection: either way it let go.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		var b [512]byte
		_, err := conn.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		return "closed by ingest", nil
	}
	return "", fmt.Errorf("ingest read %d header bytes a second to the end", len(head))
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}
