package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/enricher/internal/enrich"
	"github.com/vigie/vigie/services/enricher/internal/reftest"
)

// flakyWriter fails the messages whose index is in failFirst on its first call, as kafka-go
// reports a partition whose produce request failed, then accepts everything.
type flakyWriter struct {
	calls     [][]kafkago.Message
	failFirst map[int]bool
	always    error
}

func (w *flakyWriter) WriteMessages(_ context.Context, msgs ...kafkago.Message) error {
	w.calls = append(w.calls, append([]kafkago.Message(nil), msgs...))
	if w.always != nil {
		return w.always
	}
	if len(w.calls) == 1 && len(w.failFirst) > 0 {
		errs := make(kafkago.WriteErrors, len(msgs))
		for i := range msgs {
			if w.failFirst[i] {
				errs[i] = kafkago.LeaderNotAvailable
			}
		}
		return errs
	}
	return nil
}

func setup(t *testing.T, enriched, dlq Writer, retry time.Duration) (*Pipeline, []kafkago.Message) {
	t.Helper()
	fsys, err := reftest.FS(reftest.Options{Seed: 1})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	var tables atomic.Pointer[enrich.Table]
	tables.Store(enrich.Compile(snap))
	values, err := reftest.Marshal(reftest.Events(snap, 50, 1))
	require.NoError(t, err)
	msgs := make([]kafkago.Message, len(values))
	for i, v := range values {
		msgs[i] = kafkago.Message{Topic: "raw", Partition: 0, Offset: int64(i), Value: v}
	}
	return New(&tables, enriched, dlq, retry, zaptest.NewLogger(t), prometheus.NewRegistry()), msgs
}

func TestRetryOnlyFailedPartitions(t *testing.T) {
	w := &flakyWriter{failFirst: map[int]bool{3: true, 7: true, 8: true}}
	p, msgs := setup(t, w, &flakyWriter{}, 10*time.Second)
	require.NoError(t, p.Handle(context.Background(), msgs))
	require.Len(t, w.calls, 2)
	require.Len(t, w.calls[0], len(msgs))
	require.Equal(t, []kafkago.Message{w.calls[0][3], w.calls[0][7], w.calls[0][8]}, w.calls[1], "only the failed ones, in order")
	require.Equal(t, float64(1), testutil.ToFloat64(p.metrics.retries.WithLabelValues("enriched")))
	require.Equal(t, float64(len(msgs)), testutil.ToFloat64(p.metrics.events.WithLabelValues(LabelEnriched)))
}

func TestGiveUpFailsTheBatch(t *testing.T) {
	w := &flakyWriter{always: errors.New("broker down")}
	p, msgs := setup(t, w, &flakyWriter{}, 300*time.Millisecond)
	err := p.Handle(context.Background(), msgs)
	require.ErrorContains(t, err, "produce 50 messages to enriched after")
	require.ErrorContains(t, err, "broker down")
	require.Greater(t, len(w.calls), 1)
	require.Equal(t, float64(1), testutil.ToFloat64(p.metrics.giveUps.WithLabelValues("enriched")))
	require.Zero(t, testutil.ToFloat64(p.metrics.events.WithLabelValues(LabelEnriched)), "nothing counted as handled")
}

func TestCancelledContextStopsRetrying(t *testing.T) {
	w := &flakyWriter{always: errors.New("broker down")}
	p, msgs := setup(t, w, &flakyWriter{}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.Error(t, p.Handle(ctx, msgs))
}
