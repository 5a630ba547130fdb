package rulequality

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
)

var t0 = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func finding(rule, key string, facs []string, first, last, created time.Time) event.Alert {
	return event.Alert{Rule: rule, GroupKey: key, Facilities: facs, FirstEvidenceAt: first, LastEvidenceAt: last, CreatedAt: created}
}

func TestMatches(t *testing.T) {
	transfer := Planted{Scenario: "inmate-transfer", Rule: "DEVICE_MULTI_SITE", Facilities: []string{"ma-a", "cd-b"}, TACs: []string{"35000001"},
		At: t0, Delay: Duration(time.Hour)}
	shipment := Planted{Scenario: "prison-break-2025", Rule: "BATCH_RANGE", Facilities: []string{"ma-a", "cd-b", "cp-c"},
		TACs: []string{"35828802", "86741801"}, SerialPrefixes: []string{"417", "230"}, At: t0, Delay: Duration(25 * time.Hour)}
	keyed := Truth{Plants: []Planted{shipment}}.KeyBlocks(func(s string) string { return "id-" + s }).Plants[0]
	drone := Planted{Scenario: "drone-drop", Rule: "DRONE_THEN_NEW_DEVICE", Facilities: []string{"cp-c"}, At: t0, Delay: Duration(20 * time.Minute)}
	hour := time.Hour
	for _, c := range []struct {
		name string
		f    event.Alert
		p    Planted
		want bool
	}{
		{"device at both facilities", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(-9*24*hour), t0, t0), transfer, true},
		{"another rule", finding("SIM_CHURN", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(-9*24*hour), t0, t0), transfer, false},
		{"one facility in common", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cp-c"}, t0.Add(-24*hour), t0, t0), transfer, false},
		{"evidence ends before", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(-9*24*hour), t0.Add(-2*hour), t0.Add(-2*hour)), transfer, false},
		{"found late", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(2*hour), t0.Add(3*hour), t0.Add(3*hour)), transfer, true},
		{"evidence begins a day after the promise", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(26*hour), t0.Add(27*hour), t0.Add(27*hour)), transfer, false},
		{"evidence since the first event", finding("DEVICE_MULTI_SITE", "f95f57b8", []string{"ma-a", "cd-b"}, t0.Add(-9*24*hour), t0.Add(-2*hour), t0.Add(-2*hour)), withSince(transfer, t0.Add(-3*hour)), true},
		{"the shipment's TAC and block", finding("BATCH_RANGE", "tac=35828802,serial_block=417", []string{"ma-z"}, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), shipment, true},
		{"the shipment's TAC, another block", finding("BATCH_RANGE", "tac=35828802,serial_block=999", []string{"ma-a", "cd-b", "cp-c"}, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), shipment, false},
		{"another TAC at the same facilities", finding("BATCH_RANGE", "tac=35999999,serial_block=417", []string{"ma-a", "cd-b", "cp-c"}, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), shipment, false},
		{"keyed: the shipment's block id", finding("BATCH_RANGE", "tac=86741801,serial_block=id-86741801230", []string{"ma-z"}, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), keyed, true},
		{"keyed: not the clear prefix", finding("BATCH_RANGE", "tac=35828802,serial_block=417", []string{"ma-a", "cd-b", "cp-c"}, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), keyed, false},
		{"a TAC key", finding("BATCH_RANGE", "86741801", nil, t0.Add(-30*24*hour), t0, t0.Add(24*hour)), shipment, true},
		{"a model finding for a plant without model", finding("DRONE_THEN_NEW_DEVICE", "86741801", []string{"cp-c"}, t0, t0, t0), drone, false},
		{"a facility key", finding("DRONE_THEN_NEW_DEVICE", "cp-c", nil, t0.Add(-10*time.Minute), t0.Add(time.Hour), t0.Add(10*time.Minute)), drone, true},
		{"another facility", finding("DRONE_THEN_NEW_DEVICE", "cp-d", []string{"cp-d"}, t0, t0.Add(time.Hour), t0.Add(10*time.Minute)), drone, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, Matches(c.f, c.p))
		})
	}
}

func withSince(p Planted, since time.Time) Planted {
	p.Since = since
	return p
}

func TestScore(t *testing.T) {
	hour := time.Hour
	truth := Truth{Start: t0.AddDate(0, 0, -40), End: t0.AddDate(0, 0, 5),
		Plants: []Planted{
			{Scenario: "inmate-transfer", Rule: "DEVICE_MULTI_SITE", Facilities: []string{"ma-a", "cd-b"}, At: t0, Delay: Duration(hour)},
			{Scenario: "cloned-imei", Rule: "IMPOSSIBLE_TRAVEL", Facilities: []string{"ma-a", "cp-z"}, At: t0, Delay: Duration(hour)},
			{Scenario: "drone-drop", Rule: "DRONE_THEN_NEW_DEVICE", Facilities: []string{"cp-c"}, At: t0, Delay: Duration(20 * time.Minute)},
			// Planted 40 days in, the rule needing 180: it must stay quiet, and does not.
			{Scenario: "new-model", Rule: "NEW_TAC_NATIONAL", TACs: []string{"86000001"}, Facilities: []string{"ma-a", "cd-b"}, At: t0,
				Delay: Duration(25 * hour), History: Duration(180 * 24 * hour)},
		},
		Decoys: []Planted{
			{Scenario: "inmate-transfer", Rule: "DEVICE_MULTI_SITE", Facilities: []string{"ma-e", "cd-f"}, At: t0.Add(48 * hour), Delay: Duration(hour)},
			{Scenario: "drone-drop", Rule: "DRONE_THEN_NEW_DEVICE", Facilities: []string{"cp-g"}, At: t0.Add(48 * hour), Delay: Duration(hour)},
		},
	}
	findings := []event.Alert{
		// The transfer, found at once.
		finding("DEVICE_MULTI_SITE", "aa", []string{"ma-a", "cd-b"}, t0.Add(-24*hour), t0, t0),
		// The drone drop, found 40 minutes late.
		finding("DRONE_THEN_NEW_DEVICE", "cp-c", []string{"cp-c"}, t0, t0.Add(hour), t0.Add(40*time.Minute)),
		// The drone decoy, not quiet.
		finding("DRONE_THEN_NEW_DEVICE", "cp-g", []string{"cp-g"}, t0.Add(48*hour), t0.Add(49*hour), t0.Add(49*hour)),
		// A background finding of a rule nothing planted for.
		finding("SIM_CHURN", "bb", []string{"ma-a"}, t0, t0, t0),
		// The new model, reported while the rule warms up.
		finding("NEW_TAC_NATIONAL", "86000001", []string{"ma-a", "cd-b"}, t0, t0, t0.Add(24*hour)),
	}
	rep := Score([]string{"DEVICE_MULTI_SITE", "IMPOSSIBLE_TRAVEL", "DRONE_THEN_NEW_DEVICE", "TAC_SPREAD"}, truth, findings)
	require.Equal(t, []string{"DEVICE_MULTI_SITE", "IMPOSSIBLE_TRAVEL", "DRONE_THEN_NEW_DEVICE", "TAC_SPREAD", "NEW_TAC_NATIONAL", "SIM_CHURN"}, rules(rep))
	require.Equal(t, Row{Rule: "DEVICE_MULTI_SITE", Findings: 1, Plants: 1, Found: 1, InTime: 1, Promised: hour, Decoys: 1, Quiet: 1}, rep.Row("DEVICE_MULTI_SITE"))
	it := rep.Row("IMPOSSIBLE_TRAVEL")
	require.Equal(t, 1, it.Plants)
	require.Zero(t, it.Found)
	require.Len(t, it.Misses, 1)
	require.Contains(t, it.Misses[0], "not found: cloned-imei IMPOSSIBLE_TRAVEL")
	dr := rep.Row("DRONE_THEN_NEW_DEVICE")
	require.Equal(t, 2, dr.Findings)
	require.Equal(t, 1, dr.Unmatched, "the finding about the decoy is about no plant")
	require.Equal(t, [3]int{1, 1, 0}, [3]int{dr.Plants, dr.Found, dr.InTime})
	require.Equal(t, 40*time.Minute, dr.MaxDelay)
	require.Equal(t, [2]int{1, 0}, [2]int{dr.Decoys, dr.Quiet})
	require.Len(t, dr.Misses, 2)
	require.Equal(t, Row{Rule: "TAC_SPREAD"}, rep.Row("TAC_SPREAD"))
	require.Equal(t, 1, rep.Row("SIM_CHURN").Unmatched)
	nt := rep.Row("NEW_TAC_NATIONAL")
	require.Equal(t, [4]int{0, 1, 0, 1}, [4]int{nt.Plants, nt.Early, nt.EarlyQuiet, nt.Unmatched}, "a claim without history is about no plant")
	require.Equal(t, 5, rep.Findings)
	require.Equal(t, 2, rep.Matched)
	require.InDelta(t, 0.4, rep.Precision, 1e-9)

	var b strings.Builder
	require.NoError(t, rep.WriteTable(&b, Column{Header: "background", Value: func(rule string) string { return map[string]string{"SIM_CHURN": "3"}[rule] + "-" }}))
	require.Equal(t, `| rule                  | background | findings | unmatched | plants found | in time | max delay / promised | decoys quiet | warming up quiet |
| --------------------- | ---------- | -------- | --------- | ------------ | ------- | -------------------- | ------------ | ---------------- |
| DEVICE_MULTI_SITE     | -          | 1        | 0         | 1 / 1        | 1 / 1   | 0 / 1h               | 1 / 1        | –                |
| IMPOSSIBLE_TRAVEL     | -          | 0        | 0         | 0 / 1        | 0 / 1   | – / 1h               | –            | –                |
| DRONE_THEN_NEW_DEVICE | -          | 2        | 1         | 1 / 1        | 0 / 1   | 40m / 20m            | 0 / 1        | –                |
| TAC_SPREAD            | -          | 0        | 0         | –            | –       | –                    | –            | –                |
| NEW_TAC_NATIONAL      | -          | 1        | 1         | –            | –       | –                    | –            | 0 / 1            |
| SIM_CHURN             | 3-         | 1        | 1         | –            | –       | –                    | –            | –                |

precision of all findings: 0.40 (2 of 5 about a plant)
- IMPOSSIBLE_TRAVEL: not found: cloned-imei IMPOSSIBLE_TRAVEL at 2026-10-01T00:00:00Z, ma-a, cp-z
- DRONE_THEN_NEW_DEVICE: found 40m after it became true, promised 20m: drone-drop DRONE_THEN_NEW_DEVICE at 2026-10-01T00:00:00Z, cp-c
- DRONE_THEN_NEW_DEVICE: decoy not quiet: drone-drop DRONE_THEN_NEW_DEVICE at 2026-10-03T00:00:00Z, cp-g
- NEW_TAC_NATIONAL: reported while warming up (planted before the history the rule needs): new-model NEW_TAC_NATIONAL at 2026-10-01T00:00:00Z, TAC 86000001, ma-a, cd-b
`, b.String())

	empty := Score([]string{"TAC_SPREAD"}, Truth{}, nil)
	require.Equal(t, 1.0, empty.Precision)
	require.Equal(t, "n/a", empty.PrecisionText())
}

func rules(r Report) []string {
	var out []string
	for _, row := range r.Rows {
		out = append(out, row.Rule)
	}
	return out
}

func TestParseTruth(t *testing.T) {
	good := `{"start":"2026-09-01T00:00:00Z","end":"2026-10-10T00:00:00Z","stats":{"sent":5},
		"findings":[{"scenario":"inmate-transfer","rule":"DEVICE_MULTI_SITE","facilities":["ma-a","cd-b"],"at":"2026-10-01T00:00:00Z","delay":"1h0m0s"}],
		"decoys":[{"scenario":"drone-drop","rule":"DRONE_THEN_NEW_DEVICE","facilities":["cp-g"],"at":"2026-10-03T00:00:00Z","delay":3600000000000}]}`
	tr, err := ParseTruth([]byte(good))
	require.NoError(t, err)
	require.Len(t, tr.Plants, 1)
	require.Equal(t, Duration(time.Hour), tr.Plants[0].Delay)
	require.Equal(t, Duration(time.Hour), tr.Decoys[0].Delay, "nanoseconds")

	for _, c := range []struct{ doc, err string }{
		{`{`, "planted summary: unexpected end of JSON input"},
		{`{"end":"2026-10-10T00:00:00Z"}`, "start and end must be set"},
		{`{"start":"2026-09-01T00:00:00Z","end":"2026-10-10T00:00:00Z","findings":[{"scenario":"x","facilities":["a"],"at":"2026-10-01T00:00:00Z"}]}`, "entry 0 (x): rule is empty"},
		{`{"start":"2026-09-01T00:00:00Z","end":"2026-10-10T00:00:00Z","decoys":[{"scenario":"x","rule":"R","at":"2026-10-01T00:00:00Z"}]}`, "entry 0 (x, R): neither facilities nor tacs"},
		{`{"start":"2026-09-01T00:00:00Z","end":"2026-10-10T00:00:00Z","findings":[{"scenario":"x","rule":"R","tacs":["1"],"at":"2026-10-01T00:00:00Z","delay":"1 day"}]}`, `duration "1 day"`},
	} {
		_, err := ParseTruth([]byte(c.doc))
		require.ErrorContains(t, err, c.err, c.doc)
	}
}

// A cloned IMEI keeps being used: the same device at the same facilities days later is a
// new finding once the first's window has passed, about the same plant; a finding of another
// device, or of the same device elsewhere, is not.
func TestScoreLaterEpisodes(t *testing.T) {
	day := 24 * time.Hour
	truth := Truth{Start: t0.AddDate(0, 0, -40), End: t0.AddDate(0, 0, 10), Plants: []Planted{
		{Scenario: "cloned-imei", Rule: "IMPOSSIBLE_TRAVEL", Facilities: []string{"ma-a", "cp-z"}, Since: t0.Add(-time.Hour), At: t0},
	}}
	findings := []event.Alert{
		finding("IMPOSSIBLE_TRAVEL", "clone", []string{"ma-a", "cp-z"}, t0.Add(-10*time.Minute), t0, t0),
		finding("IMPOSSIBLE_TRAVEL", "clone", []string{"cp-z", "ma-a"}, t0.Add(5*day), t0.Add(5*day), t0.Add(5*day)),
		finding("IMPOSSIBLE_TRAVEL", "other", []string{"ma-a", "cp-z"}, t0.Add(5*day), t0.Add(5*day), t0.Add(5*day)),
		finding("IMPOSSIBLE_TRAVEL", "clone", []string{"ma-a", "cd-q"}, t0.Add(6*day), t0.Add(6*day), t0.Add(6*day)),
	}
	rep := Score(nil, truth, findings)
	row := rep.Row("IMPOSSIBLE_TRAVEL")
	require.Equal(t, [4]int{4, 2, 1, 1}, [4]int{row.Findings, row.Unmatched, row.Found, row.InTime})
	require.Equal(t, 2, rep.Matched)
}
