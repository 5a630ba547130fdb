// Package server is the HTTP API of ingest: POST /v1/events authenticates the sensor, splits
// the batch, runs each event through the pipeline, produces accepted events to
// detections.raw.v1 and rejected ones to detections.dlq.v1, and answers 200 only once Kafka
// has acknowledged every accepted event.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/ingest/internal/auth"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
	"github.com/vigie/vigie/services/ingest/internal/inflight"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

// Path is the events endpoint.
const Path = "/v1/events"

// Producer writes messages synchronously: it returns once Kafka acknowledged them all, or
// with an error. When only some were acknowledged, the error wraps kafkago.WriteErrors,
// one per message. *kafka.Producer is one.
type Producer interface {
	Write(ctx context.Context, msgs ...kafka.Message) error
}

var _ Producer = (*kafka.Producer)(nil)

// Authenticator maps a bearer token to its sensor: auth.ErrUnknownToken when none,
// auth.ErrUnavailable while no credentials are loaded (*auth.Store is one).
type Authenticator interface {
	Authenticate(token string) (auth.Sensor, error)
}

// Codes of the 403 answers, refusals of an authenticated sensor (nothing of the request is
// stored).
const (
	// CodeKindNotAllowed: an event of a kind the sensor's type does not report (a jammer's
	// token posting what a managed access system sees).
	CodeKindNotAllowed = "kind_not_allowed_for_sensor"
	// CodeCertificateNotForSensor: the client certificate (mTLS) names another sensor than
	// the bearer token's.
	CodeCertificateNotForSensor = "certificate_not_for_sensor"
)

// Options are the server's limits and timeouts.
type Options struct {
	Limits batch.Limits
	// MaxWireBytes bounds the body as sent (compressed or not).
	MaxWireBytes int64
	// RatePerSensor is the sustained events per second one sensor may send; Burst the
	// events it may send at once (at least Limits.MaxEvents).
	RatePerSensor float64
	Burst         int
	// ProduceTimeout bounds the wait for Kafka's acknowledgement of one request's events.
	ProduceTimeout time.Duration
	// RetryAfter is what a 503 tells the sensor to wait.
	RetryAfter time.Duration
	// RawTopic and DLQTopic label the produce metrics.
	RawTopic, DLQTopic string
	// Rebuilt, when set, says whether the dedup window holds what detections.raw.v1 held at
	// start; until then requests are answered 503, so that nothing already stored before a
	// restart is stored again.
	Rebuilt func() bool
	// InFlight bounds the requests handled at once and the bytes of their bodies, decoded;
	// nil: no bound. A request beyond it is answered 503 with Retry-After, its body unread.
	InFlight *inflight.Limiter
	// AdmissionWait is how long a request waits for its body's bytes to be free (behind the
	// requests that came first) before it is refused.
	AdmissionWait time.Duration
	// ReadTimeout is the HTTP server's, named in the answer to a body that timed out.
	ReadTimeout time.Duration
}

// Sizes expected of a body before it is read, to reserve its bytes (inflight): a body sent
// as is takes its Content-Length; a gzip body gzipRatio times it (detector events compress
// 5 to 10 times); a chunked body unknownSize. A body longer than expected reserves more as
// it is read.
const (
	gzipRatio   = 8
	unknownSize = 256 << 10
)

// The limits named in an overloaded answer and its metric.
const (
	LimitRequests = "limits.max_requests_in_flight"
	LimitBytes    = "limits.max_bytes_in_flight"
)

// Server handles the events API. Create it with New.
type Server struct {
	opts     Options
	auth     Authenticator
	pipe     *pipeline.Pipeline
	seen     *dedup.Window
	raw, dlq Producer
	logger   *zap.Logger
	now      func() time.Time
	limiters sync.Map // sensor id -> *rate.Limiter
	m        metrics
}

type metrics struct {
	requests      *prometheus.CounterVec
	requestTime   prometheus.Histogram
	accepted      prometheus.Counter
	duplicates    prometheus.Counter
	conflicts     prometheus.Counter
	rejected      *prometheus.CounterVec
	produceTime   *prometheus.HistogramVec
	produceErrors *prometheus.CounterVec
	rateLimited   prometheus.Counter
	inFlight      prometheus.Gauge
	overloaded    *prometheus.CounterVec
	refused       *prometheus.CounterVec
}

// New builds the server.
func New(opts Options, a Authenticator, p *pipeline.Pipeline, seen *dedup.Window, raw, dlq Producer, logger *zap.Logger, reg prometheus.Registerer) *Server {
	f := promauto.With(reg)
	if opts.InFlight == nil {
		opts.InFlight = inflight.New(math.MaxInt, math.MaxInt64)
	}
	s := &Server{opts: opts, auth: a, pipe: p, seen: seen, raw: raw, dlq: dlq, logger: logger.Named("server"), now: time.Now}
	s.m = metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Requests to the events API by HTTP status code."}, []string{"code"}),
		requestTime: f.NewHistogram(prometheus.HistogramOpts{Name: "request_duration_seconds", Help: "Time to answer a request to the events API.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		accepted:   f.NewCounter(prometheus.CounterOpts{Name: "events_accepted_total", Help: "Events produced to detections.raw.v1 and acknowledged by Kafka."}),
		duplicates: f.NewCounter(prometheus.CounterOpts{Name: "events_duplicate_total", Help: "Events acknowledged without producing, already produced (same sensor_id and event_id)."}),
		conflicts:  f.NewCounter(prometheus.CounterOpts{Name: "conflicts_total", Help: "Events refused with event_id_conflict: their (sensor_id, event_id) was stored with other content (also in events_rejected_total)."}),
		rejected:   f.NewCounterVec(prometheus.CounterOpts{Name: "events_rejected_total", Help: "Events rejected, by reason."}, []string{"reason"}),
		produceTime: f.NewHistogramVec(prometheus.HistogramOpts{Name: "produce_duration_seconds", Help: "Time for Kafka to acknowledge one request's messages, by topic.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"topic"}),
		produceErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "produce_errors_total", Help: "Produce calls that failed, by topic."}, []string{"topic"}),
		rateLimited:   f.NewCounter(prometheus.CounterOpts{Name: "rate_limited_total", Help: "Requests refused with 429 by the per-sensor rate limit."}),
		inFlight:      f.NewGauge(prometheus.GaugeOpts{Name: "requests_in_flight", Help: "Requests to the events API being handled."}),
		overloaded: f.NewCounterVec(prometheus.CounterOpts{Name: "overloaded_total",
			Help: "Requests refused with 503 because ingest holds as many requests (limit=limits.max_requests_in_flight) or body bytes (limit=limits.max_bytes_in_flight) as it may."}, []string{"limit"}),
	}
	for _, l := range []string{LimitRequests, LimitBytes} {
		s.m.overloaded.WithLabelValues(l)
	}
	s.m.refused = f.NewCounterVec(prometheus.CounterOpts{Name: "auth_refused_total",
		Help: "Requests refused by authentication (401 missing_token, unknown_token; 503 credentials_unavailable) or authorisation (403 " + CodeCertificateNotForSensor + ", " + CodeKindNotAllowed + "), by reason."}, []string{"reason"})
	for _, r := range []string{reasonMissingToken, reasonUnknownToken, reasonUnavailable, CodeCertificateNotForSensor, CodeKindNotAllowed} {
		s.m.refused.WithLabelValues(r)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "bytes_in_flight", Help: "Bytes of request bodies (decoded) reserved by the requests being handled; at most limits.max_bytes_in_flight."},
		func() float64 { return float64(opts.InFlight.Bytes()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "dedup_entries", Help: "(sensor_id, event_id) fingerprints remembered for deduplication."},
		func() float64 { return float64(seen.Len()) })
	return s
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, s.handleEvents)
	return mux
}

// Response is the body of a 200 answer, and of the 409 and 422 answers to a request of
// which every event was refused at the door.
type Response struct {
	// Code and Error, on 409 and 422 only: the code of the refusals (event_id_conflict when
	// every one is a conflict) and what the first one says.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Accepted events were produced and acknowledged by Kafka.
	Accepted int `json:"accepted"`
	// Duplicates were acknowledged without producing: already produced before.
	Duplicates int `json:"duplicates"`
	// Rejected events will never be accepted as they are; Errors says why.
	Rejected int             `json:"rejected"`
	Errors   []RejectedEvent `json:"errors,omitempty"`
}

// RejectedEvent says why one event was rejected.
type RejectedEvent struct {
	Position int                `json:"position"`
	Line     int                `json:"line,omitempty"`
	EventID  string             `json:"event_id,omitempty"`
	Code     string             `json:"code"`
	Errors   []event.FieldError `json:"errors"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	// Code, on a 403 only, names the refusal (CodeKindNotAllowed, CodeCertificateNotForSensor).
	Code  string `json:"code,omitempty"`
	Error string `json:"error"`
	// Limit, on a 503 of an overloaded ingest only, names the limit reached (LimitRequests,
	// LimitBytes).
	Limit string `json:"limit,omitempty"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.m.inFlight.Inc()
	defer s.m.inFlight.Dec()
	code := s.serve(w, r, start)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.m.requestTime.Observe(time.Since(start).Seconds())
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, start time.Time) int {
	sensor, err := s.authenticate(r)
	if err != nil {
		return s.refuse(w, r, sensor, err)
	}
	sensorID := sensor.ID
	gz, err := batch.CheckMediaType(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	if err != nil {
		return fail(w, http.StatusUnsupportedMediaType, err.Error())
	}
	if r.ContentLength > s.opts.MaxWireBytes || (!gz && r.ContentLength > s.opts.Limits.MaxBodyBytes) {
		return s.tooLarge(w)
	}
	if s.opts.Rebuilt != nil && !s.opts.Rebuilt() {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		return fail(w, http.StatusServiceUnavailable, "starting: the deduplication window is being rebuilt from Kafka; retry later")
	}

	// The request's slot and its body's bytes, before a byte of the body is read.
	ticket, err := s.opts.InFlight.Enter()
	if err != nil {
		return s.overloaded(w, LimitRequests)
	}
	defer ticket.Leave()
	reserve := func(n int64) error {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.AdmissionWait)
		defer cancel()
		return ticket.Reserve(ctx, n)
	}
	size := s.expectedSize(r, gz)
	if err := reserve(batch.Capacity(size, s.opts.Limits)); err != nil {
		return s.overloaded(w, LimitBytes)
	}
	body, err := batch.Read(http.MaxBytesReader(w, r.Body, s.opts.MaxWireBytes), gz, s.opts.Limits, size, reserve)
	switch {
	case errors.Is(err, inflight.ErrBytes):
		return s.overloaded(w, LimitBytes)
	case errors.Is(err, batch.ErrTooLarge):
		return s.tooLarge(w)
	case errors.Is(err, batch.ErrTooManyEvents):
		return fail(w, http.StatusRequestEntityTooLarge, "more than "+strconv.Itoa(s.opts.Limits.MaxEvents)+" events in one request: send smaller batches")
	case timeout(err):
		return fail(w, http.StatusRequestTimeout, "the body did not arrive within limits.read_timeout ("+s.opts.ReadTimeout.String()+" for the whole request): nothing was stored; retry it, or send smaller batches on a slow link")
	case err != nil:
		return fail(w, http.StatusBadRequest, err.Error())
	}
	defer body.Release()
	ticket.Shrink(body.Cap())
	if len(body.Items) == 0 {
		return fail(w, http.StatusBadRequest, "no events in the request body")
	}

	if wait, ok := s.admit(sensorID, len(body.Items), start); !ok {
		s.m.rateLimited.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return fail(w, http.StatusTooManyRequests, "rate limit of sensor "+sensorID+" exceeded: retry later")
	}

	receivedAt := event.NewTime(start)
	var (
		resp     Response
		rawMsgs  = make([]kafka.Message, 0, len(body.Items))
		dlqMsgs  []kafka.Message
		reserved = make([]dedup.Entry, 0, len(body.Items))
		inBatch  = make(map[uint64]seenInBatch, len(body.Items))
		inFlight bool
		refusals int // events refused at the door: times out of bounds, conflicts
		key      = []byte(sensorID)
	)
	reject := func(o pipeline.Outcome) {
		resp.Rejected++
		resp.Errors = append(resp.Errors, RejectedEvent{Position: o.Pos, Line: o.Line, EventID: o.EventID, Code: o.Code, Errors: o.Errors})
		dlqMsgs = append(dlqMsgs, kafka.Message{Key: key, Value: o.DLQ})
		s.m.rejected.WithLabelValues(o.Code).Inc()
		if refused(o.Code) {
			refusals++
		}
	}
	for _, it := range body.Items {
		o := s.pipe.Process(it, sensorID, receivedAt)
		if o.Kind != "" && !sensor.May(o.Kind) {
			s.seen.Release(reserved)
			return s.refuse(w, r, sensor, &refusal{code: CodeKindNotAllowed,
				msg: fmt.Sprintf("sensor %s is a %s, which reports %v: the event at position %d (line %d) is a %s; nothing of the request was stored", sensorID, sensor.Type, sensor.Type.Kinds(), it.Pos, it.Line, o.Kind)})
		}
		if !o.Accepted {
			reject(o)
			continue
		}
		e := dedup.Entry{Key: s.seen.Key(sensorID, o.EventID), Content: s.seen.Content(o.Raw)}
		var state dedup.State
		if first, again := inBatch[e.Key]; again {
			// Repeated within the request: as its first occurrence if the same, else a
			// conflict with it.
			state = dedup.Done
			if first.content != e.Content || first.state == dedup.Conflict {
				state = dedup.Conflict
			}
		} else {
			state = s.seen.Reserve(e)
			inBatch[e.Key] = seenInBatch{content: e.Content, state: state}
		}
		switch state {
		case dedup.Done:
			resp.Duplicates++
		case dedup.Conflict:
			s.m.conflicts.Inc()
			reject(s.pipe.Refuse(o, sensorID, receivedAt, pipeline.CodeEventIDConflict, event.FieldError{Pointer: "/event_id",
				Reason: "event_id " + o.EventID + " of sensor " + sensorID + " was already stored with other content; the first version stays: give a new event its own event_id"}))
		case dedup.Pending:
			// Another request is producing this event now; if it fails, this one must not
			// have said 200.
			inFlight = true
		case dedup.Fresh:
			reserved = append(reserved, e)
			rawMsgs = append(rawMsgs, kafka.Message{Key: key, Value: o.Raw})
		}
	}

	// The body is no longer needed: while Kafka acknowledges, the ticket keeps only what the
	// messages hold (at most what the body held), and the rest goes to the requests waiting.
	body.Release()
	ticket.Shrink(messageBytes(rawMsgs) + messageBytes(dlqMsgs))

	// The produce outlives a client that hangs up: once messages are handed to Kafka, the
	// dedup state must learn their fate, or a retry would store them twice.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.ProduceTimeout)
	defer cancel()
	var dlqErr error
	var wg sync.WaitGroup
	if len(dlqMsgs) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dlqErr = s.produce(ctx, s.dlq, s.opts.DLQTopic, dlqMsgs)
		}()
	}
	rawErr := s.produce(ctx, s.raw, s.opts.RawTopic, rawMsgs)
	wg.Wait()
	if rawErr != nil {
		// Messages Kafka did acknowledge are remembered, so that the retry the 503 asks for
		// does not store them again; the others are released for it.
		var werrs kafkago.WriteErrors
		if errors.As(rawErr, &werrs) && len(werrs) == len(reserved) {
			var ok, failed []dedup.Entry
			for i, e := range werrs {
				if e == nil {
					ok = append(ok, reserved[i])
				} else {
					failed = append(failed, reserved[i])
				}
			}
			s.seen.Commit(ok)
			s.m.accepted.Add(float64(len(ok)))
			reserved = failed
		}
		s.seen.Release(reserved)
		s.logger.Warn("produce to raw topic, answering 503", zap.String("sensor_id", sensorID), zap.Int("events", len(rawMsgs)), zap.Error(rawErr))
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		return fail(w, http.StatusServiceUnavailable, "events not stored (Kafka unavailable): retry the request later")
	}
	s.seen.Commit(reserved)
	resp.Accepted = len(rawMsgs)
	s.m.accepted.Add(float64(resp.Accepted))
	s.m.duplicates.Add(float64(resp.Duplicates))
	if dlqErr != nil {
		// The refused events' dead letters are not durable: not a 200. The accepted events
		// are stored and remembered, so the retry the 503 asks for answers them as
		// duplicates and produces the dead letters again.
		s.logger.Warn("produce to dead-letter topic, answering 503", zap.String("sensor_id", sensorID), zap.Int("events", len(dlqMsgs)), zap.Error(dlqErr))
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		return fail(w, http.StatusServiceUnavailable, fmt.Sprintf("dead letters of %d refused events not stored (Kafka unavailable): retry the request (its %d accepted events are stored and will be answered as duplicates)", len(dlqMsgs), resp.Accepted))
	}
	if inFlight {
		w.Header().Set("Retry-After", "1")
		return fail(w, http.StatusServiceUnavailable, "some events of this request are being stored by a concurrent request: retry the request")
	}
	status := http.StatusOK
	if resp.Accepted+resp.Duplicates == 0 && refusals > 0 && refusals == resp.Rejected {
		// Nothing of the request was stored and every event was refused at the door: the
		// status says why; otherwise 200 says that what was accepted is stored.
		status = http.StatusConflict
		first := resp.Errors[0]
		for _, e := range resp.Errors {
			if e.Code != pipeline.CodeEventIDConflict {
				status, first = http.StatusUnprocessableEntity, e // a time out of bounds
				break
			}
		}
		resp.Code, resp.Error = first.Code, first.Errors[0].Reason
		if resp.Rejected > 1 {
			resp.Error = strconv.Itoa(resp.Rejected) + " events refused; the first: " + resp.Error
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&resp)
	return status
}

// timeout reports whether err is a read that timed out: the connection's read deadline
// (limits.read_timeout) passed.
func timeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func messageBytes(msgs []kafka.Message) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Key) + len(m.Value))
	}
	return n
}

// expectedSize is the decoded size a body is expected to take (see gzipRatio), within
// limits.max_body_bytes.
func (s *Server) expectedSize(r *http.Request, gz bool) int64 {
	n := r.ContentLength
	switch {
	case n < 0:
		n = unknownSize
	case gz:
		n *= gzipRatio
	}
	return min(n, s.opts.Limits.MaxBodyBytes)
}

func (s *Server) tooLarge(w http.ResponseWriter) int {
	return fail(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(s.opts.Limits.MaxBodyBytes, 10)+" bytes (decoded) or "+strconv.FormatInt(s.opts.MaxWireBytes, 10)+" bytes (sent): send smaller batches")
}

// overloaded answers a request refused by the limit named: 503, nothing read or stored.
func (s *Server) overloaded(w http.ResponseWriter, limit string) int {
	s.m.overloaded.WithLabelValues(limit).Inc()
	var msg string
	if limit == LimitRequests {
		msg = "ingest is handling " + strconv.Itoa(s.opts.InFlight.MaxRequests()) + " requests, its limit (" + limit + "): nothing was stored, retry the request after Retry-After seconds"
	} else {
		msg = "ingest holds as many bytes of request bodies as it may (" + strconv.FormatInt(s.opts.InFlight.MaxBytes(), 10) + ", " + limit + "), and this one's did not fit within " + s.opts.AdmissionWait.String() + ": nothing was stored, retry the request after Retry-After seconds"
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Error: msg, Limit: limit})
	return http.StatusServiceUnavailable
}

// seenInBatch is the first occurrence of an identity in a request.
type seenInBatch struct {
	content uint32
	state   dedup.State
}

// refused reports whether code is a refusal at the door of an event valid for the schema:
// its time out of bounds, or its identity stored with other content.
func refused(code string) bool {
	switch code {
	case pipeline.CodeEventIDConflict, pipeline.CodeObservedAtInFuture, pipeline.CodeObservedAtBeyondRetention:
		return true
	}
	return false
}

func (s *Server) produce(ctx context.Context, p Producer, topic string, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	err := p.Write(ctx, msgs...)
	s.m.produceTime.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.produceErrors.WithLabelValues(topic).Inc()
	}
	return err
}

// admit takes n events from the sensor's rate budget, or says how long to wait.
func (s *Server) admit(sensorID string, n int, now time.Time) (time.Duration, bool) {
	l, ok := s.limiters.Load(sensorID)
	if !ok {
		l, _ = s.limiters.LoadOrStore(sensorID, rate.NewLimiter(rate.Limit(s.opts.RatePerSensor), s.opts.Burst))
	}
	lim := l.(*rate.Limiter)
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

func bearer(h string) string {
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}

func fail(w http.ResponseWriter, code int, msg string) int {
	return answer(w, code, ErrorResponse{Error: msg})
}

func answer(w http.ResponseWriter, code int, e ErrorResponse) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(e)
	return code
}

// Reasons of auth_refused_total besides the 403 codes.
const (
	reasonMissingToken = "missing_token"
	reasonUnknownToken = "unknown_token"
	reasonUnavailable  = "credentials_unavailable"
)

// refusal is a 403: an authenticated sensor asking for what it may not.
type refusal struct{ code, msg string }

func (r *refusal) Error() string { return r.msg }

// authenticate returns the request's sensor: its bearer token's and, on a connection with a
// client certificate (mTLS), the certificate's too: its common name or one of its DNS
// names must be the sensor id, so that a token copied off one sensor does not work from
// another's certificate.
func (s *Server) authenticate(r *http.Request) (auth.Sensor, error) {
	sensor, err := s.auth.Authenticate(bearer(r.Header.Get("Authorization")))
	if err != nil {
		return sensor, err
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		if c.Subject.CommonName != sensor.ID && !slices.Contains(c.DNSNames, sensor.ID) {
			return sensor, &refusal{code: CodeCertificateNotForSensor,
				msg: "the client certificate (common name " + strconv.Quote(c.Subject.CommonName) + ") is not sensor " + sensor.ID + "'s, whose bearer token was sent"}
		}
	}
	return sensor, nil
}

// refuse answers a request that authentication or authorisation refused, logs why (the
// sensor when known, the peer address; never the token) and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, sensor auth.Sensor, err error) int {
	reason, status := reasonUnknownToken, http.StatusUnauthorized
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		reason, status = ref.code, http.StatusForbidden
	case errors.Is(err, auth.ErrUnavailable):
		reason, status = reasonUnavailable, http.StatusServiceUnavailable
	case r.Header.Get("Authorization") == "":
		reason = reasonMissingToken
	}
	s.m.refused.WithLabelValues(reason).Inc()
	s.logger.Warn("request refused", zap.String("reason", reason), zap.String("sensor_id", sensor.ID), zap.String("peer", r.RemoteAddr))
	switch status {
	case http.StatusForbidden:
		return answer(w, status, ErrorResponse{Code: ref.code, Error: ref.msg})
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		return fail(w, status, "no sensor can be authenticated now (the credentials file failed to load): retry later")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigie-ingest"`)
	return fail(w, status, "missing or unknown bearer token")
}
