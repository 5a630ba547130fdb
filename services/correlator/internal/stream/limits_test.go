package stream_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// ruleIndex is the position of rule id among eng's rules (its Stats order).
func ruleIndex(t *testing.T, eng *stream.Engine, id string) int {
	for i, r := range eng.Rules() {
		if r.ID == id {
			return i
		}
	}
	t.Fatalf("no rule %s", id)
	return -1
}

// One IMEI seen with 5,000 IMSIs, one every 30 s (41 h 40 min), used to give 4,998
// versions of one SIM_CHURN alert and 5,000 values of state. Now: one alert in 9 versions —
// at 3 SIMs (the rule's min), then each time the count doubles (6, 12, 24, 48, 96, 192),
// then once at the cap of 256 (state.max_values: the explanation says so), then once after
// update_every (1 day) of event time — and the device's state never exceeds its cap.
func TestOneDeviceWithManySIMsGivesBoundedVersions(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 16, "sims")
	p := g.ManySIMs(g.Facility(3), start, 5000, 30*time.Second)

	eng := stream.NewEngine(rs, ref)
	var out []alert.Alert
	most := 0
	for i := range p.Events {
		out = eng.Observe(&p.Events[i], true, out)
		most = max(most, eng.Entries())
	}
	// The device (1), DEVICE_MULTI_SITE's one facility (1), IMPOSSIBLE_TRAVEL's first-step
	// event (1), SIM_CHURN's 256 SIMs and its open finding (257).
	require.Equal(t, 260, most, "entries")
	require.Equal(t, 260, eng.Entries())

	var counts []uint32
	for i, a := range out {
		require.Equal(t, "SIM_CHURN", a.Rule)
		require.Equal(t, out[0].ID, a.ID, "one finding")
		require.Equal(t, uint64(i+1), a.Version)
		require.Equal(t, p.Expect[0].GroupKey, a.GroupKey)
		require.Equal(t, p.Expect[0].Facilities, a.Facilities)
		require.LessOrEqual(t, len(a.EvidenceIDs), 20)
		counts = append(counts, a.EvidenceCount)
	}
	require.Equal(t, []uint32{3, 6, 12, 24, 48, 96, 192, 256, 256}, counts)
	require.NotContains(t, out[6].Explanation, "cap")
	capped := out[7]
	require.Contains(t, capped.Explanation, "256 SIMs")
	require.Contains(t, capped.Explanation, "state cap reached: at most 256 distinct imsi_pseudo kept per device within the window, state.max_values")
	// v8 is the 256th SIM (30 s × 255 after the first), v9 the first event a day later.
	require.Equal(t, start.Add(255*30*time.Second), capped.UpdatedAt)
	last := out[8]
	require.Equal(t, start.Add((255+2880)*30*time.Second), last.UpdatedAt)
	require.Contains(t, last.Explanation, "; 2880 sightings of further values not counted)")

	st := eng.Stats()
	require.Equal(t, uint64(5000-256), st.Overflow[ruleIndex(t, eng, "SIM_CHURN")].Values)
	require.Zero(t, st.Sheds)
}

// A capped device's state is a function of the events its rules match: a rebuild that
// replays only those (as ClickHouseRebuilder does) then carries on emits exactly what one
// engine over every event emits from there.
func TestCappedStateRebuildsTheSame(t *testing.T) {
	es := patterned(t, 34)
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 35, "cap")
	p := g.ManySIMs(g.Facility(5), es[0].ObservedAt.Add(9*24*time.Hour), 600, time.Minute)
	es = append(es, p.Events...)
	scenario.SortByTime(es)
	rs := withAttemptBurst(t)
	cfg := stream.DefaultEngineConfig()
	cfg.State.MaxValues = 16
	var cut int // after the pattern's 300th SIM: mid-pattern, the cap reached
	for n := 0; n < 300; cut++ {
		if es[cut].IMEIPseudo == p.Events[0].IMEIPseudo {
			n++
		}
	}

	whole := stream.NewEngineConfig(rs, ref, cfg)
	var want []alert.Alert
	for i := range es {
		want = whole.Observe(&es[i], i >= cut, want)
	}
	require.NotEmpty(t, want)
	var churn int
	for _, a := range want {
		if a.GroupKey == p.Expect[0].GroupKey {
			churn++
			require.Contains(t, a.Explanation, "16 distinct imsi_pseudo")
		}
	}
	require.Equal(t, 0, churn, "the cap reached before the cut, the pattern over within update_every")

	rebuilt := stream.NewEngineConfig(rs, ref, cfg)
	for i := range es[:cut] {
		for _, r := range rebuilt.Rules() {
			if r.Where.Match(&es[i]) {
				rebuilt.Observe(&es[i], false, nil)
				break
			}
		}
	}
	var got []alert.Alert
	for i := cut; i < len(es); i++ {
		got = rebuilt.Observe(&es[i], true, got)
	}
	require.Equal(t, want, got)
}

// distinctIMSIs feeds eng devices × sims events: each device seen with sims SIMs, one a
// minute per device, the devices interleaved, at facilities in turn; it calls check after
// each event with the alerts it raised (not kept).
func distinctIMSIs(t testing.TB, eng *stream.Engine, devices, sims int, check func([]alert.Alert)) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 36, "budget")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ds := make([]scenario.Device, devices)
	for i := range ds {
		ds[i] = g.NewDevice(scenario.CommonTACs[i%len(scenario.CommonTACs)])
	}
	var out []alert.Alert
	for k := 0; k < sims; k++ {
		for i := range ds {
			d := ds[i]
			d.IMSI = fmt.Sprintf("%016x%016x", i, k)
			e := g.Radio(event.KindMASAttach, d, g.Facility(i), start.Add(time.Duration(k)*time.Minute+time.Duration(i)*time.Millisecond))
			out = eng.Observe(&e, true, out[:0])
			check(out)
		}
	}
}

// The budget: 5,000 devices with 40 SIMs each (200,000 values; 20 entries per device at
// the cap of 16 values) against a budget of 50,000 entries. The partition never holds more; the oldest are forgotten (counted per
// rule), every device still raises its SIM_CHURN finding, in a bounded number of versions,
// and the heap the state holds stays proportional to the budget.
func TestStateBudgetBoundsEntries(t *testing.T) {
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	cfg := stream.DefaultEngineConfig()
	cfg.State.MaxEntries = 50_000
	cfg.State.MaxValues = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eng := stream.NewEngineConfig(rs, nil, cfg)
	most := 0
	versions := map[string]int{}
	distinctIMSIs(t, eng, 5_000, 40, func(out []alert.Alert) {
		most = max(most, eng.Entries())
		for _, a := range out {
			if a.Rule == "SIM_CHURN" {
				versions[a.GroupKey]++
			}
		}
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.LessOrEqual(t, most, cfg.State.MaxEntries)
	require.Greater(t, most, cfg.State.MaxEntries*8/10)
	st := eng.Stats()
	require.NotZero(t, st.Sheds)
	churn := ruleIndex(t, eng, "SIM_CHURN")
	require.NotZero(t, st.Overflow[churn].Budget, "entries forgotten early")
	// Each device's finding opens at 3 SIMs, and again each time the budget forgot it:
	// several versions per device, never one per SIM.
	require.Len(t, versions, 5_000, "every device raises its finding")
	for k, n := range versions {
		require.LessOrEqual(t, n, 25, "versions of %s", k)
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("entries at most %d, %d at the end, %d devices; heap held %.1f MiB (%.0f B per entry); %d sheds, %d SIM_CHURN entries forgotten early",
		most, eng.Entries(), eng.Devices(), float64(held)/(1<<20), float64(held)/float64(eng.Entries()), st.Sheds, st.Overflow[churn].Budget)
	// Generous: about 145 B per entry are measured (README), the identities add 40 B per
	// event kept, the slack covers the runtime's own.
	require.Less(t, held, int64(64<<20), "heap held")
	runtime.KeepAlive(eng)
}

// A rule that needs more state per device than the caps allow is refused, naming the rule,
// its file and the key; Validate names each bad key.
func TestStateConfigChecksRules(t *testing.T) {
	sims := &rules.Rule{ID: "MANY_SIMS", File: "many.yaml", Mode: rules.Streaming, Type: rules.ValueCount,
		Distinct: []rules.DistinctCount{{Min: 300}}}
	burst := &rules.Rule{ID: "BURST", File: "burst.yaml", Mode: rules.Streaming, Type: rules.EventCount, Threshold: 5000}
	sched := &rules.Rule{ID: "NATIONAL", File: "n.yaml", Mode: rules.Scheduled, Type: rules.ValueCount,
		Distinct: []rules.DistinctCount{{Min: 5000}}}
	c := stream.DefaultStateConfig()
	err := c.Check("state", []*rules.Rule{sims, burst, sched})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "many.yaml: rule MANY_SIMS: distinct[0].min 300 exceeds state.max_values 256")
	require.Contains(t, msg, "burst.yaml: rule BURST: threshold 5000 exceeds state.max_events 1000")
	require.NotContains(t, msg, "NATIONAL", "scheduled rules keep no streaming state")
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	require.NoError(t, c.Check("state", rs), "the shipped rules fit the defaults")

	for key, bad := range map[string]stream.StateConfig{
		"state.max_values":  {MaxValues: 0, MaxEvents: 1, MaxEntries: 1000},
		"state.max_events":  {MaxValues: 1, MaxEvents: -1, MaxEntries: 1000},
		"state.max_entries": {MaxValues: 1, MaxEvents: 1, MaxEntries: 999},
	} {
		err := bad.Validate("state")
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), key+":"), err.Error())
	}
	require.NoError(t, c.Validate("state"))

	// An engine given such a rule anyway (ruletool uses the defaults) keeps what the rule
	// needs: the cap never hides a finding.
	eng := stream.NewEngine([]*rules.Rule{sims, burst}, nil)
	require.Len(t, eng.Rules(), 2)
}

// The entries an engine counts (what StateConfig.MaxEntries bounds) are the entries its
// state holds, through observation, eviction sweeps and sheds, for every rule type.
func TestEntriesCountWhatTheStateHolds(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	rs := withAttemptBurst(t)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 37, "n")
	es, _ := g.Background(start, 20, 8, 40, 4)
	for _, p := range []scenario.Planted{g.ManySIMs(g.Facility(1), start.Add(3*24*time.Hour), 400, time.Minute),
		g.SeizedResurrection(g.Facility(2), start.Add(5*24*time.Hour)), g.ImpossibleTravel(start.Add(6 * 24 * time.Hour)),
		g.MultiSite(g.Facility(3), g.Facility(4), start.Add(7*24*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	for _, budget := range []int{1000, 1_000_000} {
		cfg := stream.DefaultEngineConfig()
		cfg.State = stream.StateConfig{MaxValues: 8, MaxEvents: 10, MaxEntries: budget}
		eng := stream.NewEngineConfig(rs, ref, cfg)
		var out []alert.Alert
		for i := range es {
			out = eng.Observe(&es[i], true, out[:0])
			if i%50 == 0 {
				require.Equal(t, stream.RecountEntries(eng), eng.Entries(), "budget %d, event %d", budget, i)
			}
			require.LessOrEqual(t, eng.Entries(), budget)
		}
		require.Equal(t, stream.RecountEntries(eng), eng.Entries())
		if st := eng.Stats(); budget == 1000 {
			require.NotZero(t, st.Sheds, "sheds ran (each after a sweep)")
		} else {
			require.Zero(t, st.Sheds)
			require.NotZero(t, st.Evicted, "sweeps evicted devices")
		}
	}
}
