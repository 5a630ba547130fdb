package stream_test

import (
	"context"
	"hash/fnv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Replay reads detections in each partition's offset order and finds what the engines of
// those partitions found on the same events: every planted streaming pattern, version for
// version; the events before from build state without emitting, and a pattern completed
// before from is not raised.
func TestReplayReadsEachPartitionInOrder(t *testing.T) {
	t.Parallel()
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -15)
	g := scenario.New(ref, 5, "rp")
	es, _ := g.Background(start, 14, 8, 8, 6)
	early := g.MultiSite(g.Facility(5), g.Facility(6), start.Add(2*24*time.Hour))
	late := []scenario.Planted{
		g.MultiSite(g.Facility(1), g.Facility(2), start.Add(9*24*time.Hour)), g.ImpossibleTravel(start.Add(10 * 24 * time.Hour)),
		g.SimChurn(g.Facility(3), start.Add(11*24*time.Hour)), g.SeizedResurrection(g.Facility(4), start.Add(12*24*time.Hour)),
	}
	es = append(es, early.Events...)
	var want []scenario.Expect
	for _, p := range late {
		es = append(es, p.Events...)
		want = append(want, p.Expect...)
	}
	scenario.SortByTime(es)

	// Three partitions by device key, offsets in event-time order within each.
	const parts = 3
	pos := make([]scenario.Position, len(es))
	next := [parts]int64{}
	byPart := [parts][]event.Enriched{}
	for i := range es {
		h := fnv.New32a()
		h.Write([]byte(es[i].Raw.DeviceKey()))
		p := int(h.Sum32() % parts)
		pos[i] = scenario.Position{Topic: "detections.enriched.v1", Partition: p, Offset: next[p]}
		next[p]++
		byPart[p] = append(byPart[p], es[i])
	}
	conn, db := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, scenario.InsertDetections(ctx, conn, db, es, pos))

	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	from, to := start.Add(7*24*time.Hour), start.Add(15*24*time.Hour)
	got, n, err := stream.Replay(ctx, conn, db, rs, nil, stream.DefaultEngineConfig(), from, to)
	require.NoError(t, err)
	require.Positive(t, n)

	// The engines of the partitions, fed the same events from memory.
	var direct []alert.Alert
	for p := range parts {
		eng := stream.NewEngineConfig(rs, nil, stream.DefaultEngineConfig())
		for i := range byPart[p] {
			e := &byPart[p][i]
			direct = eng.Observe(e, !e.ObservedAt.Before(from), direct)
		}
	}
	require.Equal(t, latest(direct), latest(got), "the replay is the partitions' engines, version for version")
	var keys []scenario.Expect
	for _, a := range got {
		keys = append(keys, scenario.Expect{Rule: a.Rule, GroupKey: a.GroupKey, Facilities: a.Facilities})
	}
	require.ElementsMatch(t, want, keys, "the patterns after from, not the one before")
}
