package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	pkgevent "github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/ingest/internal/auth"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// memProducer is an in-memory Kafka stand-in for the error paths a real broker cannot be
// made to take on demand: it fails the messages whose index is in failNext.
type memProducer struct {
	mu       sync.Mutex
	msgs     []kafka.Message
	failNext map[int]bool
}

func (p *memProducer) Write(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failNext) == 0 {
		p.msgs = append(p.msgs, msgs...)
		return nil
	}
	werrs := make(kafkago.WriteErrors, len(msgs))
	for i, m := range msgs {
		if p.failNext[i] {
			werrs[i] = errors.New("leader not available")
		} else {
			p.msgs = append(p.msgs, m)
		}
	}
	p.failNext = nil
	return fmt.Errorf("produce to raw: %w", werrs) // as kafka.Producer wraps it
}

// oneSensor is sensor s1: a managed access system with token "t", a jammer with token "j"
// (two sensors of one id, to reach the kind check with events that name s1); token "down"
// finds the credentials unavailable.
type oneSensor struct{}

func (oneSensor) Authenticate(tok string) (auth.Sensor, error) {
	switch tok {
	case "t":
		return auth.Sensor{ID: "s1", Type: reference.SensorMAS}, nil
	case "j":
		return auth.Sensor{ID: "s1", Type: reference.SensorJammer}, nil
	case "down":
		return auth.Sensor{}, auth.ErrUnavailable
	}
	return auth.Sensor{}, auth.ErrUnknownToken
}

// observedAt is a minute before the tests start: within the time bounds whenever they run,
// and the same for every event, so that an event made twice has the same content.
var observedAt = pkgevent.NewTime(time.Now().Add(-time.Minute))

func event(id string) string { return eventRAT(id, "4G") }

func eventRAT(id, rat string) string {
	return fmt.Sprintf(`{"event_id":%q,"sensor_id":"s1","observed_at":%q,"kind":"mas_attach","rat":%q,"imsi":"208150123456789"}`, id, observedAt, rat)
}

func newServer(t *testing.T, raw server.Producer) http.Handler {
	return newServerDLQ(t, raw, &memProducer{})
}

func newServerDLQ(t *testing.T, raw, dlq server.Producer) http.Handler {
	return newServerWith(t, raw, dlq, zap.NewNop(), prometheus.NewRegistry())
}

func newServerWith(t *testing.T, raw, dlq server.Producer, logger *zap.Logger, reg prometheus.Registerer) http.Handler {
	k, err := pseudonym.NewKeyring("k", []pseudonym.Key{{Version: "k", Secret: []byte("0123456789abcdef0123456789abcdef")}}, []byte("block-key-block-key-block-key-32"), "33")
	require.NoError(t, err)
	p, err := pipeline.New(k.Active(), pipeline.DefaultBounds())
	require.NoError(t, err)
	s := server.New(server.Options{
		Limits:       batch.Limits{MaxBodyBytes: 1 << 20, MaxEvents: 100, MaxEventBytes: 4096},
		MaxWireBytes: 1 << 20, RatePerSensor: 1e6, Burst: 1e6,
		ProduceTimeout: time.Second, RetryAfter: time.Second, RawTopic: "raw", DLQTopic: "dlq",
	}, oneSensor{}, p, dedup.New(10*time.Minute, time.Now), raw, dlq, logger, reg)
	return s.Handler()
}

func post(t *testing.T, h http.Handler, body string) (int, server.Response) {
	req := httptest.NewRequest(http.MethodPost, server.Path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer t")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var r server.Response
	if w.Code == http.StatusOK || w.Code == http.StatusConflict {
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &r))
	}
	return w.Code, r
}

func TestPartialProduceFailure(t *testing.T) {
	raw := &memProducer{failNext: map[int]bool{1: true}}
	h := newServer(t, raw)
	body := event("a") + "\n" + event("b") + "\n" + event("c") + "\n"
	code, _ := post(t, h, body)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Len(t, raw.msgs, 2)

	// The retry stores only what failed.
	code, r := post(t, h, body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, r.Accepted)
	require.Equal(t, 2, r.Duplicates)
	require.Len(t, raw.msgs, 3)
}

// TestDeadLetterProduceFailure: a request whose refused events' dead letters Kafka did not
// take is answered 503 with Retry-After, never 200; its retry stores the dead letters and
// answers the accepted events as duplicates.
func TestDeadLetterProduceFailure(t *testing.T) {
	raw, dlq := &memProducer{}, &memProducer{failNext: map[int]bool{0: true}}
	h := newServerDLQ(t, raw, dlq)
	body := event("a") + "\n" + `{"event_id":"bad","sensor_id":"s1"}` + "\n"
	req := httptest.NewRequest(http.MethodPost, server.Path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer t")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	require.Contains(t, w.Body.String(), "dead letters of 1 refused events not stored")
	require.Len(t, raw.msgs, 1, "the accepted event is stored")
	require.Empty(t, dlq.msgs)

	code, r := post(t, h, body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 0, r.Accepted)
	require.Equal(t, 1, r.Duplicates)
	require.Equal(t, 1, r.Rejected)
	require.Len(t, raw.msgs, 1)
	require.Len(t, dlq.msgs, 1, "the dead letter is stored by the retry")
}

func TestDuplicateWithinRequest(t *testing.T) {
	raw := &memProducer{}
	h := newServer(t, raw)
	code, r := post(t, h, event("a")+"\n"+event("a")+"\n")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, r.Accepted)
	require.Equal(t, 1, r.Duplicates)
	require.Len(t, raw.msgs, 1)
}

func TestConflictWithinRequest(t *testing.T) {
	raw := &memProducer{}
	h := newServer(t, raw)
	code, _ := post(t, h, event("a")+"\n")
	require.Equal(t, http.StatusOK, code)
	// Twice the other version: both refused, not one refused and one "duplicate" of it.
	code, r := post(t, h, eventRAT("a", "2G")+"\n"+eventRAT("a", "2G")+"\n")
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, 0, r.Duplicates)
	require.Equal(t, 2, r.Rejected)
	require.Equal(t, pipeline.CodeEventIDConflict, r.Code)
	// A new event and its other version in one request: the first stays, the second is refused.
	code, r = post(t, h, event("b")+"\n"+eventRAT("b", "2G")+"\n"+event("b")+"\n")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, [3]int{1, 1, 1}, [3]int{r.Accepted, r.Duplicates, r.Rejected})
	require.Len(t, raw.msgs, 2)
}
