package traffic

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
)

// demoRun is the default run (the demo's: 42 days, scale 0.1, every scenario), generated once
// for the tests of the package.
var demoRun = sync.OnceValues(func() (*Generator, []event.Detector) {
	w, err := loadWorld()
	if err != nil {
		panic(err)
	}
	o := DefaultOptions()
	o.Start = start
	g, err := New(w, o)
	if err != nil {
		panic(err)
	}
	var evs []event.Detector
	for {
		_, day, ok := g.Next()
		if !ok {
			return g, evs
		}
		evs = append(evs, day...)
	}
})

// TestBackgroundHasNoFacts generates 35 days of background alone, from an empty history, and
// checks that no rule's fact is in it, and the plain properties behind that: each device at
// one facility with one SIM, each SIM in one handset, no attempt after a seizure, every
// search finding a phone where a phone was active in the 24 hours before.
func TestBackgroundHasNoFacts(t *testing.T) {
	w := testWorld(t)
	o := DefaultOptions()
	o.Start, o.Days, o.Scenarios = start, 35, nil
	g, err := New(w, o)
	require.NoError(t, err)
	evs := all(t, g)
	require.Empty(t, g.Truth().Findings)
	require.Empty(t, g.Truth().Decoys)

	fs, m := facts(w, evs, g.Start(), rules)
	for _, f := range fs {
		t.Errorf("background fact: %s", f)
	}
	t.Logf("%d events in %d days; background maxima under the thresholds: %v", len(evs), o.Days, m)
	// Margins: the near misses of the plants stand above the background's own.
	assert.Less(t, m[RuleTACSpread+" (new facilities of a growing TAC in 7 days)"], 4)
	assert.Less(t, m[RuleBatchRange+" (devices of a block at 3 new facilities, growing TAC)"], 4)
	assert.Zero(t, m[RuleDroneThenNewDevice+" (new devices after a drone)"], "no new device after a background drone")
	assert.Zero(t, m[RuleSearchMiss+" (active before a search finding nothing)"], "no search finds nothing where a phone was active")
	assert.Less(t, m[RuleSyncBurst+" (facilities above in one bucket)"], 3)

	facilities, simsOf, handsetsOf := map[string]map[string]bool{}, map[string]map[string]bool{}, map[string]map[string]bool{}
	seized := map[string]time.Time{}
	drones, searches := 0, 0
	for _, e := range evs {
		s, _ := w.Ref.Sensor(e.SensorID)
		switch e.Kind {
		case event.KindDroneSeen:
			drones++
		case event.KindItemSeized:
			if e.IMEI != "" {
				seized[e.IMEI] = e.ObservedAt.Time
			} else {
				searches++
			}
			continue
		}
		if e.IMEI == "" {
			continue
		}
		add(facilities, e.IMEI, s.FacilityID)
		add(simsOf, e.IMEI, e.IMSI)
		add(handsetsOf, e.IMSI, e.IMEI)
		if at, ok := seized[e.IMEI]; ok {
			t.Errorf("device seized at %s seen again at %s", at, e.ObservedAt)
		}
	}
	for imei, fs := range facilities {
		require.Len(t, fs, 1, "device %s at several facilities", imei)
		require.Len(t, simsOf[imei], 1, "handset %s with several SIMs", imei)
	}
	for imsi, hs := range handsetsOf {
		require.Len(t, hs, 1, "SIM %s in several handsets", imsi)
	}
	require.Greater(t, len(facilities), 1500, "devices")
	require.Positive(t, drones)
	require.Positive(t, len(seized))
	require.Positive(t, searches)
}

func add(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

// TestPlantsAndDecoys checks, over the default run and a shorter, smaller one (the rule
// quality test's 36 days at 0.02), that each planted fact is there (its rule's fact, from its
// start to At plus the rule's delay), each decoy has no fact of its rule but is a near miss,
// and every fact is explained by a plant.
func TestPlantsAndDecoys(t *testing.T) {
	w := testWorld(t)
	t.Run("default", func(t *testing.T) {
		g, evs := demoRun()
		checkPlants(t, g, evs)
	})
	t.Run("36 days at 0.02", func(t *testing.T) {
		o := DefaultOptions()
		o.Seed, o.Start, o.Days, o.Scale = 14, start, 36, 0.02
		g, err := New(w, o)
		require.NoError(t, err)
		checkPlants(t, g, all(t, g))
	})
}

func checkPlants(t *testing.T, g *Generator, evs []event.Detector) {
	w := testWorld(t)
	truth := g.Truth()
	fs, _ := facts(w, evs, g.Start(), rules)
	near, _ := facts(w, evs, g.Start(), nearMiss)

	// Every rule has a plant and a decoy; each plant after its rule's history but
	// NEW_TAC_NATIONAL (180 days, longer than the period).
	for _, rule := range Rules {
		require.True(t, slices.ContainsFunc(truth.Findings, func(f Finding) bool { return f.Rule == rule }), "no plant for %s", rule)
		require.True(t, slices.ContainsFunc(truth.Decoys, func(f Finding) bool { return f.Rule == rule }), "no decoy for %s", rule)
	}
	for _, f := range truth.Findings {
		// Every plant after its rule's history but those whose rule needs more than the
		// period (NEW_TAC_NATIONAL 187 days, BATCH_RANGE 42).
		if f.History < 30*day {
			require.True(t, f.Covered(truth.Start), "%s %s covered", f.Scenario, f.Rule)
		}
		require.False(t, f.At.Before(f.Since), "%s %s", f.Scenario, f.Rule)
		require.True(t, f.At.Before(truth.End), "%s %s", f.Scenario, f.Rule)
		require.NotEmpty(t, f.Summary)
		for _, imei := range f.IMEIs {
			require.NotContains(t, f.Summary, imei[:8]+imei[8:14], "a clear IMEI in a summary")
		}
	}
	// Every facility with a MAS reports from the first day: its data covers the history
	// from the period's start.
	first := map[string]time.Time{}
	for _, e := range evs {
		s, _ := w.Ref.Sensor(e.SensorID)
		if _, ok := first[s.FacilityID]; !ok {
			first[s.FacilityID] = e.ObservedAt.Time
		}
	}
	for _, f := range w.Facilities {
		if f.HasMAS() {
			require.Less(t, first[f.ID].Sub(truth.Start), day, "%s reports from %s", f.ID, first[f.ID])
		}
	}
	for _, f := range truth.Expected() {
		var got []fact
		for _, x := range fs {
			if explains(f, x) {
				got = append(got, x)
			}
		}
		if assert.NotEmpty(t, got, "plant %s %s: no fact (%s)", f.Scenario, f.Rule, f.Summary) {
			first := got[0]
			for _, x := range got {
				if x.at.Before(first.at) {
					first = x
				}
			}
			assert.False(t, first.at.Before(f.Since), "plant %s %s: fact at %s before its start %s", f.Scenario, f.Rule, first.at, f.Since)
			assert.False(t, first.at.After(f.At.Add(f.Delay)), "plant %s %s: fact at %s, later than %s + %s", f.Scenario, f.Rule, first.at, f.At, f.Delay)
			t.Logf("plant %-20s %-22s true at %s (said %s)", f.Scenario, f.Rule, first.at.Format("01-02 15:04"), f.At.Format("01-02 15:04"))
		}
	}
	for _, d := range truth.Decoys {
		for _, x := range fs {
			assert.False(t, explains(d, x), "decoy %s %s has a fact: %s (%s)", d.Scenario, d.Rule, x, d.Summary)
		}
		// Planted as described: just under the threshold.
		assert.True(t, slices.ContainsFunc(near, func(x fact) bool { return explains(d, x) }), "decoy %s %s is not a near miss (%s)", d.Scenario, d.Rule, d.Summary)
	}
	for _, x := range fs {
		assert.True(t, slices.ContainsFunc(truth.Findings, func(f Finding) bool { return explains(f, x) }), "fact without a plant: %s", x)
	}
}

// explains reports whether a fact is the planted finding's: its rule, what it is about (the
// device, the model, the block, the facilities) and a time from the pattern's start to a day
// after the rule's delay (to the end for a spreading model).
func explains(f Finding, x fact) bool {
	if x.rule != f.Rule || x.at.Before(f.Since) {
		return false
	}
	if x.at.After(f.At.Add(f.Delay+day)) && x.rule != RuleTACSpread && x.rule != RuleBatchRange {
		return false // a spreading model goes on making facts (another block, another TAC)
	}
	switch x.rule {
	case RuleTACSpread, RuleNewTACNational:
		return slices.Contains(f.TACs, x.key)
	case RuleBatchRange:
		tac, block, _ := strings.Cut(x.key, "/")
		return slices.Contains(f.TACs, tac) && slices.Contains(f.SerialPrefixes, block)
	case RuleSyncBurst, RuleDroneThenNewDevice, RuleSIMChurnSharedSIM, RuleSearchMiss:
		n := 0
		for _, fac := range x.facilities {
			if slices.Contains(f.Facilities, fac) {
				n++
			}
		}
		return n >= min(2, len(f.Facilities))
	default:
		return slices.ContainsFunc(f.IMEIs, func(imei string) bool { return imei[:14] == x.key })
	}
}

// TestPlantsFollowTheirSchedule checks when the plants happen in the default run: the baseline
// rules' after their history, the others anywhere, each decoy described as planted.
func TestPlantsFollowTheirSchedule(t *testing.T) {
	g, _ := demoRun()
	truth := g.Truth()
	for _, f := range append(slices.Clone(truth.Findings), truth.Decoys...) {
		switch f.Rule {
		case RuleTACSpread, RuleBatchRange, RuleSyncBurst:
			require.False(t, f.Since.Before(truth.Start.Add(28*day)), "%s %s starts on %s", f.Scenario, f.Rule, f.Since)
		case RuleDroneThenNewDevice:
			require.False(t, f.Since.Before(truth.Start.Add(30*day)), "%s %s starts on %s", f.Scenario, f.Rule, f.Since)
		}
	}
	pb, ok := truth.Finding(ScenarioPrisonBreak)
	require.True(t, ok)
	require.Len(t, pb.Facilities, 66)
	require.Equal(t, []string{"35828802", "86741801", "86935104"}, pb.TACs)
	require.Equal(t, 5000, pb.Devices)
	require.Contains(t, pb.SerialPrefixes, "417")
}
