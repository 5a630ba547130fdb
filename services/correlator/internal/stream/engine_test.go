package stream_test

import (
	"fmt"
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

// patterned is a background of 14 days at 8 facilities with every streaming pattern.
func patterned(t *testing.T, seed uint64) []event.Enriched {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, seed, "h")
	es, _ := g.Background(start, 14, 8, 8, 6)
	for _, p := range []scenario.Planted{g.MultiSite(g.Facility(1), g.Facility(2), start.Add(5*24*time.Hour)), g.ImpossibleTravel(start.Add(6 * 24 * time.Hour)),
		g.SimChurn(g.Facility(3), start.Add(7*24*time.Hour)), g.SeizedResurrection(g.Facility(4), start.Add(8*24*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	return es
}

// Events with hostile times (2099, 1900, 0001, 9999, ten minutes after their receipt, 91
// days before it) among normal ones, from the same devices and sensors, change no alert
// and do not move the watermark beyond the normal events' receipt plus the skew.
func TestHostileTimesChangeNothing(t *testing.T) {
	es := patterned(t, 31)
	want := run(t, es)
	require.NotEmpty(t, want)
	var mixed []event.Enriched
	var latest time.Time
	for i := range es {
		mixed = append(mixed, es[i])
		latest = es[i].ReceivedAt.Time
		if i%97 != 0 {
			continue
		}
		r := es[i].ReceivedAt.Time
		for j, at := range []time.Time{
			time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), {},
			time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), r.Add(10 * time.Minute), r.Add(-91 * 24 * time.Hour),
		} {
			h := es[i]
			h.EventID = fmt.Sprintf("hostile-%d-%d", i, j)
			h.ObservedAt = event.NewTime(at)
			mixed = append(mixed, h)
		}
	}
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	eng := stream.NewEngine(rs, nil)
	var got []alert.Alert
	for i := range mixed {
		got = eng.Observe(&mixed[i], true, got)
	}
	require.Equal(t, want, got)
	st := eng.Stats()
	require.Equal(t, uint64(len(mixed)-len(es)), st.Future+st.BeyondRetention, "every hostile event refused")
	require.False(t, eng.Watermark().After(latest.Add(5*time.Minute)))
	require.False(t, eng.MaxEventTime().After(latest.Add(5*time.Minute)))
	require.True(t, eng.Watermark().After(es[0].ObservedAt.Add(13*24*time.Hour)), "the watermark followed the normal events: %s", eng.Watermark())
}

// withAttemptBurst is the default rules plus an event_count rule (6 identified events of
// one device within a day): counting events, it is what a second delivery changes most
// (the shipped streaming rules count distinct values or pairs).
func withAttemptBurst(t *testing.T) []*rules.Rule {
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	for _, r := range rs {
		if r.ID == "DEVICE_MULTI_SITE" {
			burst := *r
			burst.ID, burst.Type, burst.Threshold, burst.Window, burst.Distinct = "ATTEMPT_BURST", rules.EventCount, 6, 24*time.Hour, nil
			return append(rs, &burst)
		}
	}
	t.Fatal("no DEVICE_MULTI_SITE")
	return nil
}

// Every event delivered twice — the copy right after it (a producer retry) or a batch
// later (an enricher re-processing its last batch) — gives exactly the alerts of one
// delivery.
func TestEveryEventTwiceGivesTheAlertsOfOne(t *testing.T) {
	es := patterned(t, 32)
	rs := withAttemptBurst(t)
	once := stream.NewEngine(rs, nil)
	var want []alert.Alert
	for i := range es {
		want = once.Observe(&es[i], true, want)
	}
	require.NotEmpty(t, want)
	for _, lag := range []int{0, 1, 500} {
		t.Run(fmt.Sprintf("copy %d events later", lag), func(t *testing.T) {
			var twice []event.Enriched
			for i := range es {
				twice = append(twice, es[i])
				if i >= lag {
					twice = append(twice, es[i-lag])
				}
			}
			twice = append(twice, es[max(0, len(es)-lag):]...)
			require.Len(t, twice, 2*len(es))
			eng := stream.NewEngine(rs, nil)
			var got []alert.Alert
			for i := range twice {
				got = eng.Observe(&twice[i], true, got)
			}
			require.Equal(t, want, got)
			// Copies of events that left no state (matching no rule) are evaluated again,
			// harmlessly: every other copy is recognised.
			require.Greater(t, eng.Stats().Duplicates, uint64(len(es)*9/10))
			require.NotZero(t, eng.Identities())
		})
	}
}

// A sensor that goes silent (or stalls) does not freeze the watermark: once the others
// have delivered for the idle timeout, it no longer holds it back, and state is evicted.
func TestSilentSensorDoesNotFreezeTheWatermark(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 33, "i")
	es, _ := g.Background(start, 20, 6, 6, 6)
	silent := g.Facility(0).ID + ".mas-001"
	var kept []event.Enriched
	for _, e := range es {
		if e.SensorID == silent && e.ObservedAt.After(start.Add(24*time.Hour)) {
			continue // silent after its first day
		}
		kept = append(kept, e)
	}
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	eng := stream.NewEngine(rs, ref)
	var out []alert.Alert
	for i := range kept {
		out = eng.Observe(&kept[i], true, out[:0])
	}
	last := kept[len(kept)-1].ObservedAt.Time
	require.True(t, eng.Watermark().After(last.Add(-6*time.Hour)), "watermark %s, last event %s", eng.Watermark(), last)
	require.Less(t, eng.Devices(), 6*6*2, "state older than the windows was evicted: %d devices", eng.Devices())
}
