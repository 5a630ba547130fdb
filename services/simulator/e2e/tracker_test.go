package e2e

// tracker is a sensor fleet that remembers, event by event, what ingest answered: the fault
// tests must know which identities ingest acknowledged (200, not rejected) to resend the
// others and to count them end to end. internal/send counts per answer only.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// ident is an event's identity.
type ident struct{ sensor, event string }

func identOf(e *event.Detector) ident { return ident{e.SensorID, e.EventID} }

// tracker posts events as their sensors would and records every answer.
type tracker struct {
	url    string
	tokens map[string]string
	client *http.Client
	hook   func(*event.Detector) // sees every event before it is sent (the leak check's)

	mu sync.Mutex
	// acked: identities answered 200 and not rejected (accepted or duplicate).
	acked map[ident]bool
	// rejected: identities rejected, by code (in a 200 answer or a 4xx one).
	rejected map[ident]string
	// accepted and duplicates sum ingest's counts in its 200 answers.
	accepted, duplicates int64
	// statuses counts the answers by HTTP status (0: no answer).
	statuses map[int]int
}

func newTracker(p *pipeline) *tracker {
	return &tracker{
		url: "http://" + p.ingestAPI + "/v1/events", tokens: p.tokens, hook: p.ids.add,
		client:   &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		acked:    map[ident]bool{},
		rejected: map[ident]string{},
		statuses: map[int]int{},
	}
}

// sendOptions say how a stream is sent.
type sendOptions struct {
	// Workers requests in flight, at most Batch events of one sensor each.
	Workers, Batch int
	// Window: the events are cut into batches by sensor within windows of this many events
	// in their order (default 50 × Batch); a stream observed in real time wants about a
	// second of events, so that no request holds events observed long after it is sent.
	Window int
	// Rate bounds the events per second (0: as fast as ingest answers).
	Rate float64
	// Retry a batch until ingest answers 200 or 4xx (503, 429, no answer); otherwise one
	// attempt each, and what was not answered stays unacknowledged.
	Retry bool
}

func (o sendOptions) withDefaults() sendOptions {
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.Window == 0 {
		o.Window = 50 * o.Batch
	}
	return o
}

// batches cuts events, in their order, into batches of one sensor each: the events are
// taken in windows of window events, and each window is split by sensor.
func batches(events []event.Detector, batch, window int) [][]event.Detector {
	var out [][]event.Detector
	for from := 0; from < len(events); from += window {
		to := min(from+window, len(events))
		bySensor := map[string][]event.Detector{}
		var order []string
		for _, e := range events[from:to] {
			if _, ok := bySensor[e.SensorID]; !ok {
				order = append(order, e.SensorID)
			}
			bySensor[e.SensorID] = append(bySensor[e.SensorID], e)
		}
		for _, s := range order {
			es := bySensor[s]
			for len(es) > batch {
				out = append(out, es[:batch])
				es = es[batch:]
			}
			out = append(out, es)
		}
	}
	return out
}

// send posts events and returns when each batch is answered or given up, or ctx ends.
func (tr *tracker) send(ctx context.Context, t *testing.T, events []event.Detector, opt sendOptions) {
	t.Helper()
	opt = opt.withDefaults()
	queue := make(chan []event.Detector)
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range queue {
				tr.post(ctx, b, opt.Retry)
			}
		}()
	}
	began := time.Now()
	sent := 0
feed:
	for _, b := range batches(events, opt.Batch, opt.Window) {
		if opt.Rate > 0 {
			due := began.Add(time.Duration(float64(sent) / opt.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break feed
				}
			}
		}
		for i := range b {
			if tr.hook != nil {
				tr.hook(&b[i])
			}
		}
		select {
		case queue <- b:
			sent += len(b)
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
}

// post sends one batch (with retries when asked) and records the answer.
func (tr *tracker) post(ctx context.Context, b []event.Detector, retry bool) {
	var body bytes.Buffer
	for i := range b {
		data, err := json.Marshal(&b[i])
		if err != nil {
			panic(err) // the generator's events always encode
		}
		body.Write(data)
		body.WriteByte('\n')
	}
	tr.postBody(ctx, b, body.Bytes(), "", retry)
}

// postBody sends body, the batch b encoded (Content-Encoding encoding when not empty), with
// retries when asked, records the answer and returns the status of every attempt.
func (tr *tracker) postBody(ctx context.Context, b []event.Detector, body []byte, encoding string, retry bool) (statuses []int) {
	backoff := 100 * time.Millisecond
	for {
		status, answer, wait := tr.tryEncoded(ctx, b[0].SensorID, body, encoding)
		statuses = append(statuses, status)
		tr.mu.Lock()
		tr.statuses[status]++
		tr.mu.Unlock()
		switch {
		case status == http.StatusOK:
			tr.record200(b, answer)
			return statuses
		case status >= 400 && status < 500 && status != http.StatusTooManyRequests:
			tr.record4xx(b, status, answer)
			return statuses
		case !retry || ctx.Err() != nil:
			return statuses
		}
		d := max(wait, time.Duration(rand.Int64N(int64(backoff))))
		backoff = min(2*backoff, 2*time.Second)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return statuses
		}
	}
}

func (tr *tracker) try(ctx context.Context, sensor string, body []byte) (status int, answer []byte, wait time.Duration) {
	return tr.tryEncoded(ctx, sensor, body, "")
}

func (tr *tracker) tryEncoded(ctx context.Context, sensor string, body []byte, encoding string) (status int, answer []byte, wait time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tr.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("Authorization", "Bearer "+tr.tokens[sensor])
	resp, err := tr.client.Do(req)
	if err != nil {
		return 0, nil, 0
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, 0 // cut mid-answer: not an answer
	}
	if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		wait = min(time.Duration(sec)*time.Second, 5*time.Second)
	}
	return resp.StatusCode, answer, wait
}

// ingestAnswer is ingest's 200 body (and what a 4xx body may hold of it).
type ingestAnswer struct {
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Rejected   int    `json:"rejected"`
	Error      string `json:"error"`
	Code       string `json:"code"`
	Errors     []struct {
		Position int    `json:"position"`
		EventID  string `json:"event_id"`
		Code     string `json:"code"`
	} `json:"errors"`
}

func (tr *tracker) record200(b []event.Detector, body []byte) {
	var a ingestAnswer
	_ = json.Unmarshal(body, &a)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.accepted += int64(a.Accepted)
	tr.duplicates += int64(a.Duplicates)
	rejected := map[int]string{}
	for _, e := range a.Errors {
		rejected[e.Position] = e.Code
	}
	for i := range b {
		id := identOf(&b[i])
		if code, ok := rejected[i]; ok {
			tr.rejected[id] = code
			continue
		}
		tr.acked[id] = true
	}
}

// record4xx: a refused request; its events carry the codes the answer names (every event
// of the request when it names one code only).
func (tr *tracker) record4xx(b []event.Detector, status int, body []byte) {
	var a ingestAnswer
	_ = json.Unmarshal(body, &a)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	byPos := map[int]string{}
	for _, e := range a.Errors {
		byPos[e.Position] = e.Code
	}
	for i := range b {
		code := byPos[i]
		if code == "" {
			code = a.Code
		}
		if code == "" {
			code = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
		}
		tr.rejected[identOf(&b[i])] = code
	}
}

// ackedSet returns a copy of the identities acknowledged so far.
func (tr *tracker) ackedSet() map[ident]bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[ident]bool, len(tr.acked))
	for k := range tr.acked {
		out[k] = true
	}
	return out
}

func (tr *tracker) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return fmt.Sprintf("acknowledged %d identities (accepted %d, duplicates %d), rejected %d, answers by status %v",
		len(tr.acked), tr.accepted, tr.duplicates, len(tr.rejected), tr.statuses)
}
