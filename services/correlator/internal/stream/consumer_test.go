package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// flakySink fails its first fails writes, then keeps what it is given.
type flakySink struct {
	fails  int
	writes int
	alerts []alert.Alert
}

func (s *flakySink) Write(_ context.Context, as []alert.Alert) error {
	s.writes++
	if s.fails > 0 {
		s.fails--
		return errors.New("broker unavailable")
	}
	for _, a := range as {
		s.alerts = append(s.alerts, clone(a))
	}
	return nil
}

// memoryRebuilder replays the first held events of the partition (offsets 0, 1, …) below
// before into the engine, as the ClickHouse rebuilder does from detections.
type memoryRebuilder struct {
	events []event.Enriched
	held   int
	fails  int // the next fails rebuilds fail
}

func (m *memoryRebuilder) Rebuild(_ context.Context, eng *Engine, _ string, _ int, before int64) (int64, int, error) {
	if m.fails > 0 {
		m.fails--
		return 0, 0, errors.New("clickhouse unavailable")
	}
	n := min(int(before), m.held)
	for i := range n {
		eng.Observe(&m.events[i], false, nil)
	}
	return int64(n), n, nil
}

// partitionEvents is a background with every streaming pattern, as one partition's
// messages (offset i holds event i).
func partitionEvents(t *testing.T) ([]event.Enriched, []kafka.Message) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 21, "c")
	es, _ := g.Background(start, 8, 4, 6, 4)
	for _, p := range []scenario.Planted{g.MultiSite(g.Facility(0), g.Facility(1), start.Add(24*time.Hour)), g.ImpossibleTravel(start.Add(48 * time.Hour)),
		g.SimChurn(g.Facility(2), start.Add(72*time.Hour)), g.SeizedResurrection(g.Facility(3), start.Add(96*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	msgs := make([]kafka.Message, len(es))
	for i := range es {
		v, err := event.EncodeEnriched(nil, &es[i])
		require.NoError(t, err)
		msgs[i] = kafka.Message{Topic: "enriched", Partition: 0, Offset: int64(i), Value: v, Time: es[i].ObservedAt.Time}
	}
	return es, msgs
}

func testConsumer(t *testing.T, rb Rebuilder, sink alert.Sink) *Consumer {
	c := &Consumer{rebuild: rb, sink: sink, parts: map[int]*partition{}, logger: zap.NewNop(), m: newMetrics(prometheus.NewRegistry())}
	c.rules.Store(&ruleSet{rules: defaultRules(t), version: 1})
	return c
}

func defaultRules(t *testing.T) []*rules.Rule {
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	return rs
}

// direct is what one engine with the default rules emits over es, from offset emitFrom on.
func direct(t *testing.T, es []event.Enriched, emitFrom int) []alert.Alert {
	return directWith(t, defaultRules(t), es, emitFrom)
}

func directWith(t *testing.T, rs []*rules.Rule, es []event.Enriched, emitFrom int) []alert.Alert {
	eng := NewEngine(rs, nil)
	var out []alert.Alert
	for i := range es {
		out = eng.Observe(&es[i], i >= emitFrom, out)
	}
	return out
}

// handleAll hands msgs to the consumer in batches of size, each retried until it succeeds,
// as pkg/kafka's consumer does.
func handleAll(t *testing.T, c *Consumer, msgs []kafka.Message, size int) (failures int) {
	for len(msgs) > 0 {
		n := min(size, len(msgs))
		for c.handle(context.Background(), msgs[:n]) != nil {
			failures++
			require.Less(t, failures, 100)
		}
		msgs = msgs[n:]
	}
	return failures
}

func TestHandlerRetriesTheWriteNotTheEvaluation(t *testing.T) {
	es, msgs := partitionEvents(t)
	want := direct(t, es, 0)
	require.NotEmpty(t, want)
	sink := &flakySink{fails: 3}
	c := testConsumer(t, &memoryRebuilder{}, sink)
	start, err := c.assign(context.Background(), kafka.Assignment{Topic: "enriched", Partition: 0, Committed: -1})
	require.NoError(t, err)
	require.Equal(t, kafka.FirstOffset, start)
	require.Equal(t, 3, handleAll(t, c, msgs, 500))
	require.Equal(t, want, sink.alerts, "a batch handed over again is not evaluated twice")

	c.revoke(kafka.Assignment{Topic: "enriched", Partition: 0})
	require.Error(t, c.handle(context.Background(), msgs[:1]), "no engine once revoked")
}

// TestAssignRebuildsThenEmitsFromTheCommittedOffset: the new owner of a partition rebuilds
// its state from what ClickHouse holds, reads the rest of what the previous owner handled
// from Kafka without emitting, and emits exactly what one uninterrupted run emits after the
// committed offset.
// cut is the first offset 50 h into es: between the two halves of DEVICE_MULTI_SITE (day
// 1, then day 4) and after IMPOSSIBLE_TRAVEL (day 2).
func cut(es []event.Enriched) int {
	i := 0
	for i < len(es) && es[i].ObservedAt.Before(es[0].ObservedAt.Add(50*time.Hour)) {
		i++
	}
	return i
}

func TestAssignRebuildsThenEmitsFromTheCommittedOffset(t *testing.T) {
	es, msgs := partitionEvents(t)
	committed := cut(es)
	want := direct(t, es, committed)
	require.NotEmpty(t, want, "alerts after the committed offset")
	require.Less(t, len(want), len(direct(t, es, 0)), "and alerts before it")
	for _, held := range []int{committed, committed / 2, 0} {
		sink := &flakySink{}
		c := testConsumer(t, &memoryRebuilder{events: es, held: held}, sink)
		start, err := c.assign(context.Background(), kafka.Assignment{Topic: "enriched", Partition: 0, Committed: int64(committed)})
		require.NoError(t, err)
		switch held {
		case committed:
			require.Equal(t, int64(committed), start)
		case 0:
			require.Equal(t, kafka.FirstOffset, start)
		default:
			require.Equal(t, int64(held), start, "ClickHouse lags: read the gap from Kafka")
		}
		handleAll(t, c, msgs[held:], 300)
		require.Equal(t, want, sink.alerts, "ClickHouse holds %d of %d", held, committed)
	}
}

// TestNewRulesSwitchAtTheNextBatch: after SetRules, a partition rebuilds its engine with the
// new rules from ClickHouse at its next batch and emits from there what the new rules would
// have, had they always run; while ClickHouse lacks events below the batch, it keeps the old
// rules, up to switchWait.
func TestNewRulesSwitchAtTheNextBatch(t *testing.T) {
	es, msgs := partitionEvents(t)
	old := defaultRules(t)
	var without []*rules.Rule // the new rules: DEVICE_MULTI_SITE removed
	for _, r := range old {
		if r.ID != "DEVICE_MULTI_SITE" {
			without = append(without, r)
		}
	}
	at := cut(es)
	require.NotEqual(t, directWith(t, old, es, at), directWith(t, without, es, at), "the change shows after the cut")
	for _, tc := range []struct {
		name     string
		lag      int // events below the batch ClickHouse lacks at the first try
		fails    int // rebuilds that fail
		wait     time.Duration
		switchAt int // where the new rules apply
	}{
		{"clickhouse holds the events", 0, 0, time.Hour, at},
		{"clickhouse catches up", 10, 0, time.Hour, at + 100},
		{"waited long enough", 10, 0, 0, at},
		{"clickhouse fails once", 0, 1, 0, at + 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb := &memoryRebuilder{events: es, held: at - tc.lag}
			sink := &flakySink{}
			c := testConsumer(t, rb, sink)
			c.switchRetry, c.switchWait = 0, tc.wait
			_, err := c.assign(context.Background(), kafka.Assignment{Topic: "enriched", Partition: 0, Committed: -1})
			require.NoError(t, err)
			handleAll(t, c, msgs[:at], 300)
			c.SetRules(without)
			rb.fails = tc.fails
			require.Equal(t, rules.Names(NewEngine(without, nil).Rules()), rules.Names(c.Rules()))
			handleAll(t, c, msgs[at:at+100], 100)
			want := uint64(2)
			if tc.switchAt > at {
				want = 1
			}
			require.Equal(t, want, c.partition(0).rules, "the version of the rules in force")
			rb.held = len(es) // the writer caught up
			handleAll(t, c, msgs[at+100:], 300)
			require.Equal(t, uint64(2), c.partition(0).rules)
			alerts := append(directWith(t, old, es[:tc.switchAt], 0), directWith(t, without, es, tc.switchAt)...)
			if tc.lag > 0 && tc.wait == 0 {
				// Switched without the events ClickHouse lacked: the new state misses them.
				lacking := append(append([]event.Enriched(nil), es[:at-tc.lag]...), es[at:]...)
				alerts = append(directWith(t, old, es[:at], 0), directWith(t, without, lacking, at-tc.lag)...)
			}
			require.Equal(t, alerts, sink.alerts)
		})
	}
}
