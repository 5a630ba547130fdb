package follow

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
)

func rawRecord(t testing.TB, id string, at time.Time) []byte {
	rssi := -71.5
	r := event.Raw{
		Common: event.Common{EventID: id, SensorID: "cp-aix-luynes.batiment-b.mas-tecore-inac-01", ObservedAt: event.NewTime(at),
			Kind: event.KindMASAttach, Zone: "batiment-b-aile-est-etage-2", Cell: "B-214", RAT: event.RAT4G, Band: "B20", RSSIdBm: &rssi, Outcome: event.OutcomeBlocked},
		Pseudonyms: event.Pseudonyms{KeyVersion: "k1", IMEIPseudo: "5d806e50e0a5f5481dd645d86bc78936", TAC: "35828802", MCC: "208", MNC: "15"},
		ReceivedAt: event.NewTime(at.Add(time.Second)),
	}
	b, err := event.EncodeRaw(nil, &r)
	require.NoError(t, err)
	return b
}

func TestIdentity(t *testing.T) {
	v := rawRecord(t, "tecore:01JDQ:000001", time.Now())
	s, e, ok := Identity(v)
	require.True(t, ok)
	require.Equal(t, "cp-aix-luynes.batiment-b.mas-tecore-inac-01", string(s))
	require.Equal(t, "tecore:01JDQ:000001", string(e))

	// Another field order (another encoder): decoded.
	s, e, ok = Identity([]byte(`{"sensor_id":"s-1","event_id":"e-1","observed_at":"2026-11-25T09:14:07.125Z","kind":"rf_burst","received_at":"2026-11-25T09:14:08.125Z"}`))
	require.True(t, ok)
	require.Equal(t, "s-1", string(s))
	require.Equal(t, "e-1", string(e))

	for _, bad := range []string{``, `{`, `{"event_id":"e"}`, `not json`} {
		_, _, ok = Identity([]byte(bad))
		require.False(t, ok, bad)
	}
}

func newFollower(t testing.TB, seen *dedup.Window) *Follower {
	f, err := New(kafka.Config{Brokers: []string{"127.0.0.1:1"}}, "raw", 10*time.Minute, true, seen, zap.NewNop(), prometheus.NewRegistry(), prometheus.NewRegistry())
	require.NoError(t, err)
	return f
}

// The content learnt from the log is the content the request path computes from the same
// record: a resend after a restart is a duplicate.
func TestHandleLearnsWhatRequestsCheck(t *testing.T) {
	seen := dedup.New(10*time.Minute, time.Now)
	f := newFollower(t, seen)
	now := time.Now()
	v := rawRecord(t, "e-1", now)
	old := rawRecord(t, "e-old", now.Add(-11*time.Minute))
	require.NoError(t, f.handle(context.Background(), []kafka.Message{
		{Partition: 0, Offset: 0, Value: v, Time: now},
		{Partition: 0, Offset: 1, Value: old, Time: now.Add(-11 * time.Minute)},
		{Partition: 0, Offset: 2, Value: []byte("garbage"), Time: now},
	}))
	resend := rawRecord(t, "e-1", now) // received again, a minute later
	resend = append(resend[:len(resend)-len(`"2026-11-25T09:14:08.125Z"}`)], `"2030-01-01T00:00:00.000Z"}`...)
	key := seen.Key("cp-aix-luynes.batiment-b.mas-tecore-inac-01", "e-1")
	require.Equal(t, dedup.Done, seen.Reserve(dedup.Entry{Key: key, Content: seen.Content(resend)}))
	require.Equal(t, dedup.Conflict, seen.Reserve(dedup.Entry{Key: key, Content: seen.Content(rawRecord(t, "e-1", now.Add(time.Millisecond)))}))
	require.Equal(t, 1, seen.Len(), "the expired one is not kept")
	require.Equal(t, int64(3), f.next[0])
}

// BenchmarkHandle is the follower's own cost per message read back (Kafka's fetch and
// decoding by kafka-go come on top; the ingest benchmark measures the whole).
func BenchmarkHandle(b *testing.B) {
	seen := dedup.New(10*time.Minute, time.Now)
	f := newFollower(b, seen)
	now := time.Now()
	msgs := make([]kafka.Message, 5000)
	n := 0
	var spent time.Duration
	for range b.N {
		for i := range msgs {
			msgs[i] = kafka.Message{Offset: int64(n), Value: rawRecord(b, "tecore:01JDQ:"+strconv.Itoa(n), now), Time: now}
			n++
		}
		start := time.Now()
		_ = f.handle(context.Background(), msgs)
		spent += time.Since(start)
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(n), "ns/msg")
}
