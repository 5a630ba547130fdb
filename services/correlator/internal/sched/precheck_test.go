package sched_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// The pre-checks of SEARCH_MISS (a then event after a search that found nothing where a
// phone had been) and SIM_CHURN_SHARED_SIM (a SIM that reaches three handsets over the
// catch-up range) skip the steps of their near misses — a search of an empty zone, a missed
// phone that never comes back, a SIM in two handsets — and keep the alerts of stepping every
// window, version for version, with far fewer evaluations.
func TestPreChecksSkipNearMisses(t *testing.T) {
	t.Parallel()
	es, _, end := plantScheduled(t, true)
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(refs, 13, "n")
	at := end.Add(-30 * time.Hour)
	empty := g.Seized(scenario.Device{}, g.Facility(3), at)
	empty.Zone = "S-8"
	gone := g.NewDevice(scenario.CommonTACs[2])
	gone.Zone = "S-7"
	missed := g.Seized(scenario.Device{}, g.Facility(3), at.Add(2*time.Hour))
	missed.Zone = gone.Zone
	es = append(es, empty, g.Radio(event.KindMASAttach, gone, g.Facility(3), at.Add(-time.Hour)), missed)
	pair := g.NewDevice(scenario.CommonTACs[0])
	other := g.NewDevice(scenario.CommonTACs[1])
	other.IMSI = pair.IMSI
	es = append(es, g.Radio(event.KindMASAttach, pair, g.Facility(6), at), g.Radio(event.KindMASAttach, other, g.Facility(6), at.Add(time.Hour)))
	scenario.SortByTime(es)

	all, err := rules.LoadDefault()
	require.NoError(t, err)
	var rs []*rules.Rule
	for _, r := range all {
		if r.ID == "SEARCH_MISS" || r.ID == "SIM_CHURN_SHARED_SIM" {
			rs = append(rs, r)
		}
	}
	require.Len(t, rs, 2)
	cfg := sched.DefaultConfig()
	cfg.Backfill, cfg.MaxStepsPerTick = 2*24*time.Hour, 200
	every := newCatchUpRun(t, es, cfg, false)
	every.s.SetRules(rs)
	every.untilCaughtUp(t)
	skip := newCatchUpRun(t, es, cfg, true)
	skip.s.SetRules(rs)
	skip.untilCaughtUp(t)

	fired := map[string]bool{}
	for _, a := range every.sink.Alerts {
		fired[a.Rule] = true
	}
	require.Equal(t, map[string]bool{"SEARCH_MISS": true, "SIM_CHURN_SHARED_SIM": true}, fired, "the planted patterns fire")
	require.Equal(t, sortedAlerts(every.sink.Alerts), sortedAlerts(skip.sink.Alerts))
	t.Logf("evaluations: every window %v, skipping %v", every.byRule, skip.byRule)
	require.Less(t, skip.byRule["SEARCH_MISS"]*4, every.byRule["SEARCH_MISS"])
	require.Less(t, skip.byRule["SIM_CHURN_SHARED_SIM"]*4, every.byRule["SIM_CHURN_SHARED_SIM"]*3)
}
