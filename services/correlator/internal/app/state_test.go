package app_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// metricValue is the value of the metric name with labels among reg's, 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestManySIMsGiveOneBoundedAlert is issue 16's case through Kafka and ClickHouse: one
// IMEI seen with 5,000 IMSIs (one every 30 s) used to publish 4,998 versions of one
// SIM_CHURN alert and keep 5,000 values of state. Now the alerts topic carries one alert in
// 9 versions (at 3 SIMs, at each doubling up to 192, at the cap of 256, then a day later),
// the stored alert says the cap was reached, the overflow is counted (4,744 sightings of
// SIMs not tracked) and the partition holds 260 entries.
func TestManySIMsGiveOneBoundedAlert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 16, "sims")
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * 24 * time.Hour)
	p := g.ManySIMs(g.Facility(3), t0, 5000, 30*time.Second)
	e.produce(p.Events)

	cfg := e.config("sims")
	cfg.Scheduled = false
	r := e.run(cfg, "sims")
	require.Eventually(t, func() bool { return e.committed("sims") }, 3*time.Minute, 100*time.Millisecond)
	reg := r.svc.Registry
	part := partitionOf(p.Events[0].Enrichment.DeviceKey)
	require.Equal(t, 260.0, metricValue(t, reg, "vigie_correlator_state_entries", map[string]string{"partition": strconv.Itoa(part)}))
	require.Equal(t, 4744.0, metricValue(t, reg, "vigie_correlator_state_overflow_total", map[string]string{"rule": "SIM_CHURN", "kind": "values"}))
	require.Zero(t, metricValue(t, reg, "vigie_correlator_state_overflow_total", map[string]string{"rule": "SIM_CHURN", "kind": "budget"}))
	require.Equal(t, 9.0, metricValue(t, reg, "vigie_correlator_streaming_alerts_total", map[string]string{"rule": "SIM_CHURN"}))
	require.NoError(t, r.stop())

	pub := e.published()
	require.Len(t, pub, 1, "one finding")
	for _, versions := range pub {
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}, versions)
	}
	stored := e.stored()
	require.Len(t, stored, 1)
	a := stored[0]
	require.Equal(t, "SIM_CHURN", a.Rule)
	require.Equal(t, p.Expect[0].GroupKey, a.GroupKey)
	require.Equal(t, uint64(9), a.Version)
	require.Equal(t, uint32(256), a.EvidenceCount)
	require.Len(t, a.EvidenceIDs, 20)
	require.Contains(t, a.Explanation, "used 256 SIMs")
	require.Contains(t, a.Explanation, "state cap reached: at most 256 distinct imsi_pseudo kept per device within the window, state.max_values; 2880 sightings of further values not counted")
}
