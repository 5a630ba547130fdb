package consume_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/writer/internal/chtest"
	"github.com/vigie/vigie/services/writer/internal/consume"
	"github.com/vigie/vigie/services/writer/internal/kafkatest"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sample"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

type harness struct {
	t        *testing.T
	topic    string
	dlqTopic string
	db       string
	store    *sink.Sink
	conn     driver.Conn
	totals   func() chtest.Totals
	reg      *prometheus.Registry
}

func newHarness(t *testing.T, partitions int) *harness {
	conn, db := chtest.Database(t)
	topic, dlq := kafkatest.Topics(t, partitions)
	s, err := sink.New(conn, db, time.Minute)
	require.NoError(t, err)
	return &harness{t: t, topic: topic, dlqTopic: dlq, db: db, store: s, conn: conn,
		totals: func() chtest.Totals { return chtest.Count(t, conn, db) }}
}

// settings are the knobs a test turns: the consumer's batching and the writer's bounds.
type settings struct {
	batchSize      int
	batchWait      time.Duration
	maxPendingRows int
	// insertBudget bounds the retries of one insert with its token (InsertRetry.MaxElapsed).
	insertBudget time.Duration
}

func (h *harness) settings() settings {
	return settings{batchSize: 2000, batchWait: 200 * time.Millisecond, maxPendingRows: 10000, insertBudget: 2 * time.Second}
}

// fast is the retry policy of the tests: the production schedule, faster.
var fast = retry.Policy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.2}

// start runs the shared consumer with the writer's handler on store until the test ends or
// stop is called.
func (h *harness) start(set settings, store consume.Store) (stop func()) {
	return h.startIn(testenv.Name(h.t, "group"), set, store)
}

// startIn is start in consumer group group.
func (h *harness) startIn(group string, set settings, store consume.Store) (stop func()) {
	t := h.t
	h.reg = prometheus.NewRegistry()
	conn := kafkatest.Conn(t)
	dlq := kafkatest.Producer(t, h.dlqTopic)
	insertRetry := fast
	insertRetry.MaxElapsed = set.insertBudget
	w, err := consume.New(consume.Config{
		Topic: h.topic, MaxPendingRows: set.maxPendingRows, MaxConcurrentInserts: 2, InsertRetry: insertRetry,
	}, store, dlq, zaptest.NewLogger(t), prometheus.WrapRegistererWithPrefix("vigie_writer_", h.reg))
	require.NoError(t, err)
	cc := kafka.DefaultConsumerConfig(group)
	cc.BatchSize, cc.BatchWait, cc.Retry = set.batchSize, set.batchWait, fast
	c, err := kafka.NewConsumer(conn, cc, h.topic, w.Handle, w.Hooks(), zaptest.NewLogger(t), h.reg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, c.Stop(ctx))
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

func (h *harness) metric(name string) float64 {
	mfs, err := h.reg.Gather()
	require.NoError(h.t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func (h *harness) waitRows(want uint64) {
	require.Eventually(h.t, func() bool { return h.totals().OffsetsRows >= want }, 60*time.Second, 100*time.Millisecond)
}

func TestEveryMessageIsWrittenOnceOrDeadLettered(t *testing.T) {
	h := newHarness(t, 4)
	const valid, garbage, incomplete = 20000, 30, 20
	gen := sample.New(7, 2000, time.Now().Add(-time.Hour))
	p := kafkatest.Producer(t, h.topic)
	i := 0
	kafkatest.Produce(t, p, valid+garbage+incomplete, func() ([]byte, []byte) {
		i++
		switch {
		case i%500 == 0 && i/500 <= garbage:
			return []byte("k"), []byte(`{"event_id": "broken", "observed_at": 12`)
		case i%500 == 250 && i/500 < incomplete:
			return []byte("k"), []byte(`{"sensor_id": "s1", "kind": "mas_attach", "observed_at": "2026-11-25T10:00:00.000Z"}`)
		}
		return gen.JSON()
	})
	h.start(h.settings(), h.store)
	h.waitRows(valid)
	require.Eventually(t, func() bool { return len(kafkatest.DeadLetters(t, h.dlqTopic)) >= garbage+incomplete }, 30*time.Second, 200*time.Millisecond)

	chtest.WaitConsistent(t, h.totals, valid)
	dead := kafkatest.DeadLetters(t, h.dlqTopic)
	reasons := map[string]int{}
	sources := map[string]bool{}
	for _, d := range dead {
		reasons[d.Reason]++
		require.Equal(t, "writer", d.Service)
		require.NotNil(t, d.Source)
		require.Equal(t, h.topic, d.Source.Topic)
		sources[fmt.Sprintf("%d/%d", d.Source.Partition, d.Source.Offset)] = true
	}
	require.Equal(t, map[string]int{event.ReasonDecodeFailed: garbage, event.ReasonSchemaInvalid: incomplete}, reasons)
	require.Len(t, sources, garbage+incomplete, "each dead letter once")
	require.Equal(t, float64(valid), h.metric("vigie_writer_rows_written_total"))
	require.Equal(t, float64(garbage+incomplete), h.metric("vigie_writer_dlq_total"))
}

// ambiguous writes the block, then reports a failure for the first n inserts: the client
// cannot tell whether its insert landed (a connection lost after the data was sent).
type ambiguous struct {
	consume.Store
	n atomic.Int64
	// untokened gives every insert a token of its own, so that ClickHouse never drops a
	// repeated insert: only the writer itself can keep it from doubling rows.
	untokened bool
	inserts   atomic.Int64
}

func (a *ambiguous) Insert(ctx context.Context, blocks []*rows.Block, token string) error {
	if a.untokened {
		token = fmt.Sprintf("%s#%d", token, a.inserts.Add(1))
	}
	if err := a.Store.Insert(ctx, blocks, token); err != nil {
		return err
	}
	if a.n.Add(-1) >= 0 {
		return errors.New("read: connection reset by peer")
	}
	return nil
}

func TestRetryAfterAnAmbiguousFailureDoesNotDuplicate(t *testing.T) {
	h := newHarness(t, 2)
	const n = 10000
	gen := sample.New(8, 1000, time.Now().Add(-time.Hour))
	kafkatest.Produce(t, kafkatest.Producer(t, h.topic), n, gen.JSON)
	store := &ambiguous{Store: h.store}
	store.n.Store(6)
	set := h.settings()
	set.insertBudget = time.Minute // each failure retried with its token, however slow the machine
	h.start(set, store)
	h.waitRows(n)
	chtest.WaitConsistent(t, h.totals, n)
	require.GreaterOrEqual(t, h.metric("vigie_writer_retries_total"), 6.0)
	require.Equal(t, float64(n), h.metric("vigie_writer_rows_written_total"))
}

// TestBatchRetriedAfterAnUnknownOutcomeIsNotDuplicated leaves no budget to retry an insert
// with its token, and no token protection either: each ambiguous failure goes back to the
// consumer, whose retry of the batch finds in detections what the failed insert stored.
func TestBatchRetriedAfterAnUnknownOutcomeIsNotDuplicated(t *testing.T) {
	h := newHarness(t, 3)
	const n = 9000
	gen := sample.New(12, 1000, time.Now().Add(-time.Hour))
	kafkatest.Produce(t, kafkatest.Producer(t, h.topic), n, gen.JSON)
	store := &ambiguous{Store: h.store, untokened: true}
	store.n.Store(4)
	set := h.settings()
	set.batchSize, set.insertBudget = 1000, time.Nanosecond
	h.start(set, store)
	h.waitRows(n)
	chtest.WaitConsistent(t, h.totals, n)
	require.Positive(t, h.metric("vigie_writer_duplicates_total"), "a retried batch found what the failed insert stored")
	require.Positive(t, h.metric("vigie_kafka_consumer_retries_total"), "the consumer retried the batches")
}

// poison rejects, as ClickHouse rejects bad data, any block holding one of its event ids.
type poison struct {
	consume.Store
	bad map[string]bool
}

func (p *poison) Insert(ctx context.Context, blocks []*rows.Block, token string) error {
	for _, b := range blocks {
		for _, id := range b.EventID {
			if p.bad[id] {
				return fmt.Errorf("code: 469, constraint violated by %s: %w", id, sink.ErrRejected)
			}
		}
	}
	return p.Store.Insert(ctx, blocks, token)
}

func TestPoisonRowsAreIsolated(t *testing.T) {
	h := newHarness(t, 1)
	const n = 5000
	gen := sample.New(9, 500, time.Now().Add(-time.Hour))
	bad, badOffsets := map[string]bool{}, map[int64]bool{}
	i := 0
	kafkatest.Produce(t, kafkatest.Producer(t, h.topic), n, func() ([]byte, []byte) {
		i++
		e := gen.Next()
		if i%1000 == 17 {
			bad[e.EventID] = true
			badOffsets[int64(i-1)] = true // one partition, produced in order
		}
		k, v := []byte(e.Enrichment.DeviceKey), must(json(e))
		return k, v
	})
	h.start(h.settings(), &poison{Store: h.store, bad: bad})
	h.waitRows(uint64(n - len(bad)))
	require.Eventually(t, func() bool { return len(kafkatest.DeadLetters(t, h.dlqTopic)) >= len(bad) }, 30*time.Second, 200*time.Millisecond)
	chtest.WaitConsistent(t, h.totals, uint64(n-len(bad)))
	for _, d := range kafkatest.DeadLetters(t, h.dlqTopic) {
		require.Equal(t, event.ReasonWriteFailed, d.Reason)
		// The test's event ids hold 11 digits: too many for a dead letter, which names the
		// message by its position instead.
		require.Empty(t, d.EventID)
		require.Equal(t, h.topic, d.Source.Topic)
		require.True(t, badOffsets[d.Source.Offset], "offset %d", d.Source.Offset)
	}
	require.Positive(t, h.metric("vigie_writer_batches_total"))
}

// TestStopThenRestartStoresEachOnce stops the writer while it writes (the consumer finishes
// and commits the batches in hand) and starts it again in the same group: every event once.
func TestStopThenRestartStoresEachOnce(t *testing.T) {
	h := newHarness(t, 2)
	const n = 20000
	gen := sample.New(10, 300, time.Now().Add(-time.Hour))
	kafkatest.Produce(t, kafkatest.Producer(t, h.topic), n, gen.JSON)
	set := h.settings()
	set.batchSize = 500
	group := testenv.Name(t, "group")
	stop := h.startIn(group, set, h.store)
	require.Eventually(t, func() bool { return h.totals().OffsetsRows > 0 }, 60*time.Second, 20*time.Millisecond)
	stop()
	require.Less(t, h.totals().Rows, uint64(n), "stopped before the end")
	h.startIn(group, set, h.store)
	h.waitRows(n)
	chtest.WaitConsistent(t, h.totals, n)
}

// inserts counts the inserts and the months they span.
type inserts struct {
	consume.Store
	n, multiMonth atomic.Int64
}

func (c *inserts) Insert(ctx context.Context, blocks []*rows.Block, token string) error {
	c.n.Add(1)
	first := blocks[0].ObservedAt[0]
	for _, b := range blocks {
		for _, ts := range b.ObservedAt {
			if ts.Year() != first.Year() || ts.Month() != first.Month() {
				c.multiMonth.Add(1)
				return c.Store.Insert(ctx, blocks, token)
			}
		}
	}
	return c.Store.Insert(ctx, blocks, token)
}

// TestMonthsInAnyOrderCostOneInsertPerMonth: events whose months alternate message by
// message cost one insert per month of a batch, not one per change of month; no insert
// mixes months (see decode); each event once, with every rollup agreeing.
func TestMonthsInAnyOrderCostOneInsertPerMonth(t *testing.T) {
	h := newHarness(t, 1)
	const n = 6000
	gen := sample.New(11, 300, time.Now().Add(-time.Hour))
	i := 0
	kafkatest.Produce(t, kafkatest.Producer(t, h.topic), n, func() ([]byte, []byte) {
		i++
		e := gen.Next()
		if i%2 == 0 { // every other event from five weeks before: another month
			e.ObservedAt = event.NewTime(e.ObservedAt.AddDate(0, 0, -35))
		}
		return []byte(e.Enrichment.DeviceKey), must(json(e))
	})
	store := &inserts{Store: h.store}
	set := h.settings()
	h.start(set, store)
	h.waitRows(n)
	chtest.WaitConsistent(t, h.totals, n)
	require.LessOrEqual(t, store.n.Load(), int64(2*(n/set.batchSize+2)), "one insert per month of a batch, not one per change of month")
	require.Zero(t, store.multiMonth.Load(), "an insert mixed months")
}

// TestEveryIdentityIsStoredOnce delivers every event again — re-produced to the topic in
// another order and next to itself (a producer's retry), then again on another topic (a
// topic deleted and recreated: the same offsets, other events, and the same events at other
// offsets) and with another content (a conflicting version) — and finds each event once,
// first version kept, every rollup agreeing.
func TestEveryIdentityIsStoredOnce(t *testing.T) {
	h := newHarness(t, 3)
	const n = 6000
	gen := sample.New(13, 600, time.Now().Add(-2*time.Hour))
	events := make([]event.Enriched, n)
	for i := range events {
		events[i] = gen.Next()
	}
	produce := func(topic string, idx []int, change func(*event.Enriched)) {
		j := 0
		kafkatest.Produce(t, kafkatest.Producer(t, topic), len(idx), func() ([]byte, []byte) {
			e := events[idx[j]]
			j++
			if change != nil {
				change(&e)
			}
			return []byte(e.Enrichment.DeviceKey), must(json(e))
		})
	}
	first := make([]int, 0, n+n/10)
	for i := range n {
		first = append(first, i)
		if i%10 == 0 {
			first = append(first, i) // next to itself
		}
	}
	produce(h.topic, first, nil)
	group := testenv.Name(t, "group")
	stop := h.startIn(group, h.settings(), h.store)
	h.waitRows(n)
	stop()

	// Again, backwards, with a conflicting version of every third event.
	again := make([]int, n)
	for i := range again {
		again[i] = n - 1 - i
	}
	produce(h.topic, again, func(e *event.Enriched) {
		if v := e.RSSIdBm; v != nil && len(e.EventID)%3 == 0 {
			x := *v - 7
			e.RSSIdBm = &x
		}
	})
	stop = h.startIn(group, h.settings(), h.store)
	require.Eventually(t, func() bool { return h.metric("vigie_writer_duplicates_total") >= n }, 60*time.Second, 100*time.Millisecond)
	stop()
	stop = h.startIn(testenv.Name(t, "other"), h.settings(), h.store) // the whole topic again, in a new group
	require.Eventually(t, func() bool { return h.metric("vigie_writer_duplicates_total") >= float64(len(first)+n) }, 60*time.Second, 100*time.Millisecond)
	require.Zero(t, h.metric("vigie_writer_rows_written_total"))
	stop()

	// A recreated topic: another topic name stands for it (offsets from 0 again) in the
	// same database, with the same events and n/2 new ones.
	recreated, _ := kafkatest.Topics(t, 3)
	more := make([]event.Enriched, n/2)
	for i := range more {
		more[i] = gen.Next()
	}
	events = append(events, more...)
	all := make([]int, len(events))
	for i := range all {
		all[i] = i
	}
	produce(recreated, all, nil)
	h.topic = recreated
	h.start(h.settings(), h.store)
	h.waitRows(n + n/2)
	require.Eventually(t, func() bool { return h.metric("vigie_writer_duplicates_total") >= float64(n) }, 60*time.Second, 100*time.Millisecond)
	chtest.WaitConsistent(t, h.totals, uint64(n+n/2))
	require.Equal(t, float64(n/2), h.metric("vigie_writer_rows_written_total"), "the recreated topic's run wrote the new events only")

	r, err := h.conn.Query(context.Background(), "SELECT event_id, rssi_dbm FROM `"+h.db+"`.detections")
	require.NoError(t, err)
	defer r.Close()
	stored := map[string]*float64{}
	for r.Next() {
		var id string
		var rssi *float64
		require.NoError(t, r.Scan(&id, &rssi))
		stored[id] = rssi
	}
	require.NoError(t, r.Err())
	for _, e := range events {
		require.Equal(t, e.RSSIdBm, stored[e.EventID], "the first version of %s", e.EventID)
	}
}
