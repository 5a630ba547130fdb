package send

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeIngest answers like ingest: per-sensor tokens, NDJSON bodies, events whose event_id
// starts with "bad" rejected; the first failFirst requests get a 503.
type fakeIngest struct {
	mu        sync.Mutex
	tokens    map[string]string
	bySensor  map[string]int
	failFirst atomic.Int64
	limitOnce atomic.Bool
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.failFirst.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if f.limitOnce.CompareAndSwap(true, false) {
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if r.URL.Path != Path || r.Header.Get("Content-Type") != "application/x-ndjson" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var a answer
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		var e event.Detector
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || f.tokens[e.SensorID] != tok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(e.EventID, "bad") {
			a.Rejected++
			continue
		}
		a.Accepted++
		f.mu.Lock()
		f.bySensor[e.SensorID]++
		f.mu.Unlock()
	}
	_ = json.NewEncoder(w).Encode(a)
}

func TestSenderAccountsForEveryEvent(t *testing.T) {
	tests := []struct {
		name      string
		failFirst int64
		limit     bool
	}{
		{"healthy", 0, false},
		{"ingest unavailable at first", 3, false},
		{"rate limited once", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeIngest{tokens: map[string]string{"s-1": "vgs_a", "s-2": "vgs_b", "s-3": "vgs_c"}, bySensor: map[string]int{}}
			fake.failFirst.Store(tt.failFirst)
			fake.limitOnce.Store(tt.limit)
			srv := httptest.NewServer(fake)
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.URL, cfg.BatchMax, cfg.Workers = srv.URL, 7, 3
			s := New(cfg, fake.tokens, zap.NewNop())
			ctx := context.Background()
			for i := range 300 {
				id := "ev-" + string(rune('a'+i%26)) + time.Duration(i).String()
				if i%50 == 0 {
					id = "bad-" + id
				}
				e := event.Detector{Common: event.Common{EventID: id, SensorID: []string{"s-1", "s-2", "s-3"}[i%3], Kind: event.KindRFBurst, ObservedAt: event.NewTime(time.Now())}}
				require.NoError(t, s.Add(ctx, &e))
			}
			require.NoError(t, s.Close(ctx))
			st := s.Stats()
			require.Equal(t, Stats{Sent: 300, Accepted: 294, Rejected: 6, Requests: st.Requests, Retries: st.Retries}, st)
			require.Equal(t, map[string]int{"s-1": 98, "s-2": 98, "s-3": 98}, fake.bySensor)
			if tt.failFirst > 0 || tt.limit {
				require.Positive(t, st.Retries)
			}
		})
	}
}

func TestSenderUnknownSensor(t *testing.T) {
	s := New(DefaultConfig(), map[string]string{"s-1": "vgs_a"}, zap.NewNop())
	defer s.Close(context.Background())
	err := s.Add(context.Background(), &event.Detector{Common: event.Common{SensorID: "s-9"}})
	require.ErrorIs(t, err, ErrNoToken)
}

func TestSenderGivesUpOnPermanentError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.URL = srv.URL
	s := New(cfg, map[string]string{"s-1": "vgs_a"}, zap.NewNop())
	for range 10 {
		require.NoError(t, s.Add(context.Background(), &event.Detector{Common: event.Common{EventID: "x", SensorID: "s-1", Kind: event.KindRFBurst}}))
	}
	require.NoError(t, s.Close(context.Background()))
	require.Equal(t, int64(10), s.Stats().Failed)
	require.Equal(t, int64(0), s.Stats().Retries)
}
