package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/rulequality"
	"github.com/vigie/vigie/services/simulator/internal/report"
)

func TestWriteQuality(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	at := start.Add(30 * 24 * time.Hour)
	truth := rulequality.Truth{Start: start, End: start.Add(42 * 24 * time.Hour),
		Plants: []rulequality.Planted{
			{Scenario: "sim-churn", Rule: "SIM_CHURN", Facilities: []string{"ma-a"}, Since: at.Add(-time.Hour), At: at, Summary: "three SIMs"},
			{Scenario: "national-burst", Rule: "SYNC_BURST", Facilities: []string{"ma-b", "ma-c"}, Since: at, At: at, Delay: rulequality.Duration(15 * time.Minute), History: rulequality.Duration(28 * 24 * time.Hour), Summary: "a burst"},
			{Scenario: "search-miss", Rule: "SEARCH_MISS", Facilities: []string{"ma-d"}, Since: at, At: at, Delay: rulequality.Duration(time.Hour), Summary: "a miss"},
			{Scenario: "prison-break-2025", Rule: "NEW_TAC_NATIONAL", TACs: []string{"35828802"}, Since: at, At: at, History: rulequality.Duration(180 * 24 * time.Hour), Summary: "new model"},
		},
		Decoys: []rulequality.Planted{
			{Scenario: "sim-churn", Rule: "SIM_CHURN", Facilities: []string{"ma-e"}, Since: at, At: at, Summary: "two SIMs"},
			{Scenario: "national-burst", Rule: "SYNC_BURST", Facilities: []string{"ma-f", "ma-g"}, Since: at, At: at, Summary: "four facilities"},
		},
	}
	alerts := []report.Alert{
		{Rule: "SIM_CHURN", GroupKey: "dev", Facilities: []string{"ma-a"}, FirstEvidenceAt: at.Add(-time.Hour), LastEvidenceAt: at, CreatedAt: at},
		{Rule: "SYNC_BURST", GroupKey: "", Facilities: []string{"ma-f", "ma-g"}, FirstEvidenceAt: at, LastEvidenceAt: at, CreatedAt: at.Add(10 * time.Minute)},
		{Rule: "TAC_SPREAD", GroupKey: "35000001", Facilities: []string{"ma-z"}, FirstEvidenceAt: at, LastEvidenceAt: at, CreatedAt: at},
	}
	var b strings.Builder
	writeQuality(&b, truth, alerts, map[string]time.Time{"SEARCH_MISS": at.Add(-time.Hour), "SYNC_BURST": at.Add(time.Hour)}, "summary.json")
	out := b.String()
	for _, want := range []string{
		"sim-churn SIM_CHURN: found 0 after it became true (promised 0)",
		"national-burst SYNC_BURST: MISSED",
		"search-miss SEARCH_MISS: pending: SEARCH_MISS evaluated up to",
		"prison-break-2025 NEW_TAC_NATIONAL: warming up, must stay quiet: planted before the 180 days of history",
		"sim-churn SIM_CHURN: quiet",
		"national-burst SYNC_BURST: NOT QUIET",
		"precision of all findings: 0.33 (1 of 3 about a plant)",
	} {
		require.Contains(t, out, want)
	}
}
