// Package send posts detector events to the ingest API the way a fleet of sensors would:
// each sensor's events in NDJSON batches under that sensor's bearer token, several requests
// in flight, retrying with backoff when ingest asks to (429, 503) or cannot be reached.
package send

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
)

// Path is the ingest API's events endpoint.
const Path = "/v1/events"

// Config tunes the sender.
type Config struct {
	// URL is the ingest API's base URL, e.g. http://127.0.0.1:19080.
	URL string `yaml:"url"`
	// Workers is the number of requests in flight.
	Workers int `yaml:"workers"`
	// BatchMax is the most events of one request (ingest's limit is 1,000 by default).
	BatchMax int `yaml:"batch_max"`
	// FlushAfter sends a sensor's partial batch after this long (wall time).
	FlushAfter time.Duration `yaml:"flush_after"`
	// Timeout bounds one request.
	Timeout time.Duration `yaml:"timeout"`
	// Retries bounds the attempts of one batch after the first.
	Retries int `yaml:"retries"`
}

// DefaultConfig targets a local ingest.
func DefaultConfig() Config {
	return Config{URL: "http://127.0.0.1:19080", Workers: 8, BatchMax: 1000, FlushAfter: time.Second, Timeout: 30 * time.Second, Retries: 30}
}

// Validate names the first bad field.
func (c Config) Validate(prefix string) error {
	switch {
	case !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://"):
		return fmt.Errorf("%s.url: %q must be an http:// or https:// URL", prefix, c.URL)
	case c.Workers < 1 || c.Workers > 256:
		return fmt.Errorf("%s.workers: must be 1 to 256", prefix)
	case c.BatchMax < 1:
		return fmt.Errorf("%s.batch_max: must be positive", prefix)
	case c.FlushAfter <= 0 || c.Timeout <= 0:
		return fmt.Errorf("%s.flush_after, %s.timeout: must be positive", prefix, prefix)
	case c.Retries < 0:
		return fmt.Errorf("%s.retries: must not be negative", prefix)
	}
	return nil
}

// Stats counts events by what ingest answered.
type Stats struct {
	// Sent is every event handed to the sender.
	Sent int64 `json:"sent"`
	// Accepted, Duplicates and Rejected are ingest's counts in its 200 answers.
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Rejected   int64 `json:"rejected"`
	// Failed events were never answered with 200 (retries exhausted, or a 4xx answer).
	Failed   int64 `json:"failed"`
	Requests int64 `json:"requests"`
	Retries  int64 `json:"retries"`
}

// Answered is the number of events ingest answered for.
func (s Stats) Answered() int64 { return s.Accepted + s.Duplicates + s.Rejected }

// ErrNoToken: an event of a sensor the sender has no token for.
var ErrNoToken = errors.New("no token for sensor")

type buffer struct {
	buf bytes.Buffer
	n   int
}

type job struct {
	sensor string
	body   []byte
	n      int
}

// Sender batches events per sensor and posts them. Add, Flush and Close are called from one
// goroutine; the posting happens on Workers goroutines started by New.
type Sender struct {
	cfg     Config
	tokens  map[string]string
	logger  *zap.Logger
	client  *http.Client
	buffers map[string]*buffer
	queue   chan job
	wg      sync.WaitGroup
	last    time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	sent, accepted, duplicates, rejected, failed, requests, retries atomic.Int64
	// OnAnswer, when set before the first Add, is called from the workers after each
	// answered batch with the sensor and ingest's counts (for latency probes).
	OnAnswer func(sensor string, accepted, rejected int)
}

// New starts a sender. tokens maps each sensor id to its bearer token.
func New(cfg Config, tokens map[string]string, logger *zap.Logger) *Sender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{
		cfg:     cfg,
		tokens:  tokens,
		logger:  logger.Named("send"),
		client:  &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers, MaxConnsPerHost: cfg.Workers}},
		buffers: map[string]*buffer{},
		queue:   make(chan job, cfg.Workers*2),
		last:    time.Now(),
		ctx:     ctx,
		cancel:  cancel,
	}
	for range cfg.Workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for j := range s.queue {
				s.post(j)
			}
		}()
	}
	return s
}

// Add buffers one event under its sensor. It blocks while every worker is busy and the queue
// is full (backpressure), and returns early when ctx ends.
func (s *Sender) Add(ctx context.Context, e *event.Detector) error {
	if _, ok := s.tokens[e.SensorID]; !ok {
		return fmt.Errorf("%w %s", ErrNoToken, e.SensorID)
	}
	b := s.buffers[e.SensorID]
	if b == nil {
		b = &buffer{}
		s.buffers[e.SensorID] = b
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	b.buf.Write(data)
	b.buf.WriteByte('\n')
	b.n++
	s.sent.Add(1)
	if b.n >= s.cfg.BatchMax {
		if err := s.enqueue(ctx, e.SensorID, b); err != nil {
			return err
		}
	}
	if time.Since(s.last) >= s.cfg.FlushAfter {
		return s.Flush(ctx)
	}
	return nil
}

// Flush queues every partial batch.
func (s *Sender) Flush(ctx context.Context) error {
	s.last = time.Now()
	for id, b := range s.buffers {
		if b.n > 0 {
			if err := s.enqueue(ctx, id, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sender) enqueue(ctx context.Context, sensor string, b *buffer) error {
	j := job{sensor: sensor, body: bytes.Clone(b.buf.Bytes()), n: b.n}
	b.buf.Reset()
	b.n = 0
	select {
	case s.queue <- j:
		return nil
	case <-ctx.Done():
		s.failed.Add(int64(j.n))
		return ctx.Err()
	}
}

// Close flushes, waits for every batch to be answered (or given up) and stops the workers.
// When ctx ends first, the batches in flight are abandoned and counted as failed.
func (s *Sender) Close(ctx context.Context) error {
	err := s.Flush(ctx)
	close(s.queue)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	s.client.CloseIdleConnections()
	return err
}

// Stats returns the counts so far.
func (s *Sender) Stats() Stats {
	return Stats{
		Sent: s.sent.Load(), Accepted: s.accepted.Load(), Duplicates: s.duplicates.Load(), Rejected: s.rejected.Load(),
		Failed: s.failed.Load(), Requests: s.requests.Load(), Retries: s.retries.Load(),
	}
}

// answer is ingest's 200 body.
type answer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Errors     []struct {
		Code string `json:"code"`
	} `json:"errors"`
}

// post sends one batch until ingest answers 200, a permanent error, or the retry budget
// runs out. Waits are exponential with full jitter, at least the server's Retry-After.
func (s *Sender) post(j job) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		wait, err := s.try(j)
		if err == nil {
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || attempt >= s.cfg.Retries || s.ctx.Err() != nil {
			s.failed.Add(int64(j.n))
			s.logger.Warn("batch given up", zap.String("sensor_id", j.sensor), zap.Int("events", j.n), zap.Int("attempts", attempt+1), zap.Error(err))
			return
		}
		s.retries.Add(1)
		d := time.Duration(rand.Int64N(int64(backoff))) + wait
		backoff = min(2*backoff, 5*time.Second)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
}

type permanentError struct{ error }

// try posts once; it returns how long the server asked to wait and an error when the batch
// was not answered with 200.
func (s *Sender) try(j job) (time.Duration, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.cfg.URL+Path, bytes.NewReader(j.body))
	if err != nil {
		return 0, permanentError{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+s.tokens[j.sensor])
	s.requests.Add(1)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post events: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			return 0, permanentError{fmt.Errorf("decode answer: %w", err)}
		}
		s.accepted.Add(int64(a.Accepted))
		s.duplicates.Add(int64(a.Duplicates))
		s.rejected.Add(int64(a.Rejected))
		if a.Rejected > 0 {
			codes := map[string]int{}
			for _, e := range a.Errors {
				codes[e.Code]++
			}
			s.logger.Debug("events rejected", zap.String("sensor_id", j.sensor), zap.Int("rejected", a.Rejected), zap.Any("codes", codes))
		}
		if s.OnAnswer != nil {
			s.OnAnswer(j.sensor, a.Accepted, a.Rejected)
		}
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		wait := time.Duration(0)
		if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = min(time.Duration(sec)*time.Second, 10*time.Second)
		}
		return wait, fmt.Errorf("ingest answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	default:
		return 0, permanentError{fmt.Errorf("ingest answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))}
	}
}
