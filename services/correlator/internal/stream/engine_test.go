package stream_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

func run(t *testing.T, es []event.Enriched) []alert.Alert {
	t.Helper()
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	eng := stream.NewEngine(rs, nil)
	var out []alert.Alert
	for i := range es {
		out = eng.Observe(&es[i], true, out)
	}
	return out
}

// latest keeps the highest version of each alert.
func latest(as []alert.Alert) map[string]alert.Alert {
	out := map[string]alert.Alert{}
	for _, a := range as {
		if cur, ok := out[a.ID]; !ok || a.Version > cur.Version {
			out[a.ID] = a
		}
	}
	return out
}

func TestStreamingRulesOnPlantedPatterns(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		plant func(g *scenario.Gen) scenario.Planted
	}{
		{"multi site", func(g *scenario.Gen) scenario.Planted {
			return g.MultiSite(g.Facility(1), g.Facility(2), start.Add(5*24*time.Hour))
		}},
		{"impossible travel", func(g *scenario.Gen) scenario.Planted { return g.ImpossibleTravel(start.Add(6 * 24 * time.Hour)) }},
		{"sim churn", func(g *scenario.Gen) scenario.Planted { return g.SimChurn(g.Facility(3), start.Add(7*24*time.Hour)) }},
		{"seized resurrection", func(g *scenario.Gen) scenario.Planted {
			return g.SeizedResurrection(g.Facility(4), start.Add(8*24*time.Hour))
		}},
		{"background only", func(*scenario.Gen) scenario.Planted { return scenario.Planted{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := scenario.New(ref, 42, "t")
			es, _ := g.Background(start, 14, 8, 10, 6)
			p := tc.plant(g)
			es = append(es, p.Events...)
			scenario.SortByTime(es)
			got := latest(run(t, es))
			var gotKeys []scenario.Expect
			for _, a := range got {
				gotKeys = append(gotKeys, scenario.Expect{Rule: a.Rule, GroupKey: a.GroupKey, Facilities: a.Facilities})
				require.NotEmpty(t, a.EvidenceIDs)
				require.NotEmpty(t, a.Explanation)
				require.False(t, a.LastEvidenceAt.Before(a.FirstEvidenceAt))
			}
			require.ElementsMatch(t, p.Expect, gotKeys)
		})
	}
}

func TestReplayGivesSameAlerts(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 7, "r")
	es, _ := g.Background(start, 10, 6, 10, 6)
	for _, p := range []scenario.Planted{g.MultiSite(g.Facility(0), g.Facility(1), start.Add(24*time.Hour)), g.ImpossibleTravel(start.Add(48 * time.Hour)),
		g.SimChurn(g.Facility(2), start.Add(72*time.Hour)), g.SeizedResurrection(g.Facility(3), start.Add(96*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	first, second := run(t, es), run(t, es)
	require.NotEmpty(t, first)
	require.Equal(t, first, second)
}

func TestRebuildWithoutEmitThenContinue(t *testing.T) {
	// Handling a prefix with emit=false then the rest with emit=true gives exactly the alerts
	// a single run emits for the rest: what a restarted correlator does after rebuilding its
	// state from the events it had already handled.
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 9, "b")
	es, _ := g.Background(start, 6, 6, 10, 6)
	p := g.SeizedResurrection(g.Facility(2), start.Add(48*time.Hour))
	es = append(es, p.Events...)
	scenario.SortByTime(es)
	cut := 0
	for i := range es {
		if es[i].Kind == event.KindItemSeized && es[i].IMEIPseudo != "" {
			cut = i + 1 // restart right after the seizure: mid-pattern
		}
	}
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	whole := stream.NewEngine(rs, ref)
	var want []alert.Alert
	for i := range es {
		want = whole.Observe(&es[i], i >= cut, want)
	}
	restarted := stream.NewEngine(rs, ref)
	var got []alert.Alert
	for i := range es {
		got = restarted.Observe(&es[i], i >= cut, got)
	}
	require.Len(t, got, 1)
	require.Equal(t, want, got)
}
