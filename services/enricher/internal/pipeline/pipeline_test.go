package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
)

// memWriter records what is produced; it fails while fail is set, as a producer whose
// brokers are down does. It checks that writes do not overlap.
type memWriter struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	calls   int
	fail    error
	writing atomic.Bool
	overlap atomic.Bool
}

func (w *memWriter) Write(_ context.Context, msgs ...kafka.Message) error {
	if w.writing.Swap(true) {
		w.overlap.Store(true)
	}
	defer w.writing.Store(false)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail != nil {
		return w.fail
	}
	w.msgs = append(w.msgs, msgs...)
	return nil
}

func setup(t *testing.T, enriched, dlq Writer) (*Pipeline, *reference.Snapshot) {
	t.Helper()
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	var tables atomic.Pointer[enrich.Table]
	tables.Store(enrich.Compile(snap))
	return New(&tables, enriched, dlq, zaptest.NewLogger(t), prometheus.NewRegistry()), snap
}

func batch(t *testing.T, snap *reference.Snapshot, partition, n int, seed uint64) []kafka.Message {
	t.Helper()
	values, err := reftest.Marshal(reftest.Events(snap, n, seed))
	require.NoError(t, err)
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: "raw", Partition: partition, Offset: int64(i), Value: v}
	}
	return msgs
}

func TestProduceFailureFailsTheBatch(t *testing.T) {
	w := &memWriter{fail: errors.New("broker down")}
	p, snap := setup(t, w, &memWriter{})
	msgs := batch(t, snap, 0, 50, 1)
	err := p.Handle(context.Background(), msgs)
	require.ErrorContains(t, err, "produce 50 messages to enriched")
	require.ErrorContains(t, err, "broker down")
	require.Equal(t, 1, w.calls, "no retry here: the consumer retries the batch")
	require.Equal(t, float64(1), testutil.ToFloat64(p.metrics.failures.WithLabelValues("enriched")))
	require.Zero(t, testutil.ToFloat64(p.metrics.events.WithLabelValues(LabelEnriched)), "nothing counted as handled")

	// The consumer hands the same batch again once the brokers are back.
	w.fail = nil
	require.NoError(t, p.Handle(context.Background(), msgs))
	require.Len(t, w.msgs, len(msgs))
	require.Equal(t, float64(len(msgs)), testutil.ToFloat64(p.metrics.events.WithLabelValues(LabelEnriched)))
}

// TestConcurrentPartitions runs the handler for several partitions at once, as the consumer
// does (run with -race): every event comes out once, a partition's events in its order, and
// writes to one topic never overlap.
func TestConcurrentPartitions(t *testing.T) {
	w := &memWriter{}
	p, snap := setup(t, w, &memWriter{})
	const partitions, batches, size = 4, 5, 100
	var wg sync.WaitGroup
	for part := range partitions {
		wg.Go(func() {
			for b := range batches {
				require.NoError(t, p.Handle(context.Background(), batch(t, snap, part, size, uint64(part*batches+b))))
			}
		})
	}
	wg.Wait()
	require.Len(t, w.msgs, partitions*batches*size)
	require.False(t, w.overlap.Load(), "writes to one topic go one at a time")
	require.Equal(t, float64(partitions*batches*size), testutil.ToFloat64(p.metrics.events.WithLabelValues(LabelEnriched)))
}

// An event with a phone goes out with its device's route in the route header (its
// partition, kept across key rotations); one without a phone without it, partitioned by key.
func TestRouteHeader(t *testing.T) {
	w := &memWriter{}
	p, snap := setup(t, w, &memWriter{})
	evs := reftest.Events(snap, 400, 3)
	values, err := reftest.Marshal(evs)
	require.NoError(t, err)
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: "raw", Offset: int64(i), Value: v}
	}
	require.NoError(t, p.Handle(context.Background(), msgs))
	require.Len(t, w.msgs, len(evs))
	byRoute := 0
	for i, m := range w.msgs {
		var route []byte
		for _, h := range m.Headers {
			if h.Key == kafka.RouteHeader {
				route = h.Value
			}
		}
		require.Equal(t, evs[i].DeviceRoute, string(route), "message %d", i)
		if route != nil {
			byRoute++
			require.Equal(t, evs[i].IMEIPseudo, string(m.Key), "the key stays the device's pseudonym")
		}
	}
	require.Greater(t, byRoute, 10)
	require.Less(t, byRoute, len(evs), "drones, jammers and RF bursts have no route")
}
