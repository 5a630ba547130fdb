package rules_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	schemarules "github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

func TestDefaultRulesLoad(t *testing.T) {
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	got := map[string]rules.Mode{}
	for _, r := range rs {
		got[r.ID] = r.Mode
	}
	require.Equal(t, map[string]rules.Mode{
		"TAC_SPREAD": rules.Scheduled, "BATCH_RANGE": rules.Scheduled, "NEW_TAC_NATIONAL": rules.Scheduled,
		"DEVICE_MULTI_SITE": rules.Streaming, "IMPOSSIBLE_TRAVEL": rules.Streaming, "SIM_CHURN": rules.Streaming,
		"SIM_CHURN_SHARED_SIM": rules.Scheduled, "DRONE_THEN_NEW_DEVICE": rules.Scheduled, "SYNC_BURST": rules.Scheduled,
		"SEIZED_RESURRECTION": rules.Streaming, "SEARCH_MISS": rules.Scheduled,
	}, got)
}

const good = `
rule: TEST_RULE
title: a test rule
severity: low
type: value_count
mode: streaming
group_by: [device_key]
window: 1d
distinct:
  - {field: facility_id, min: 2}
`

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"missing window", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: streaming\ngroup_by: [device_key]\ndistinct: [{field: facility_id, min: 2}]\n",
			[]string{"r.yaml:1:1: (root): missing property 'window'"}},
		{"bad severity and min", "rule: X_1\ntitle: abc\nseverity: urgent\ntype: value_count\nmode: streaming\ngroup_by: [device_key]\nwindow: 1d\ndistinct:\n  - {field: facility_id, min: 0}\n",
			[]string{"r.yaml:3:11: severity:", "r.yaml:9:31: distinct[0].min: minimum: got 0, want 1"}},
		{"bad duration", good + "update_every: 3 days\n", []string{"r.yaml:11:15: update_every:"}},
		{"unknown field", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: streaming\ngroup_by: [device_key]\nwindow: 1d\ndistinct:\n  - {field: facility, min: 2}\n",
			[]string{"r.yaml:9:13: distinct[0].field: unknown field \"facility\""}},
		{"streaming needs device_key", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: streaming\ngroup_by: [tac]\nwindow: 1d\ndistinct:\n  - {field: facility_id, min: 2}\n",
			[]string{"r.yaml:6:11: group_by: streaming rules group by [device_key]"}},
		{"rollup lacks field", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: scheduled\nsource: tac_per_day\nschedule: {every: 1d}\ngroup_by: [tac]\nwindow: 1d\ndistinct:\n  - {field: imsi_pseudo, min: 2}\n",
			[]string{"distinct[0].field: table tac_per_day cannot count distinct imsi_pseudo"}},
		{"daily rollup needs days", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: scheduled\nsource: tac_per_day\nschedule: {every: 1h}\ngroup_by: [tac]\nwindow: 1d\ndistinct:\n  - {field: facility_id, min: 2}\n",
			[]string{"r.yaml:7:19: schedule.every: X_1 reads tac_per_day, a daily rollup: use whole days"}},
		{"unknown where field", good + "where: {imei: '123'}\n", []string{"where.imei: unknown field \"imei\""}},
		{"national rollup has no facility key", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: scheduled\nsource: serial_block_national_per_day\nschedule: {every: 1d}\ngroup_by: [tac, facility_id]\nwindow: 1d\ndistinct:\n  - {field: facility_id, min: 2}\n",
			[]string{"source: table serial_block_national_per_day has no field facility_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Load(fstest.MapFS{"r.yaml": {Data: []byte(tc.yaml)}})
			require.ErrorIs(t, err, rules.ErrInvalid)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadDuplicateAndDisabled(t *testing.T) {
	_, err := rules.Load(fstest.MapFS{"a.yaml": {Data: []byte(good)}, "b.yaml": {Data: []byte(good)}})
	require.ErrorContains(t, err, "b.yaml:2:7: rule: rule TEST_RULE already defined in a.yaml")
	rs, err := rules.Load(fstest.MapFS{"a.yaml": {Data: []byte(good + "enabled: false\n")}})
	require.NoError(t, err)
	require.Empty(t, rs)
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]string{"30d": "720h0m0s", "10m": "10m0s", "2w": "336h0m0s", "90s": "1m30s", "250ms": "250ms"} {
		d, err := rules.ParseDuration(in)
		require.NoError(t, err)
		require.Equal(t, want, d.String())
	}
	_, err := rules.ParseDuration("3 days")
	require.Error(t, err)
}

// TestProblemsAtTheirLines checks that one load reports every problem of a file, schema
// violations and what the engines cannot evaluate alike, each at its own line.
func TestProblemsAtTheirLines(t *testing.T) {
	const file = `rule: X_1
title: abc
severity: low
type: value_count
mode: streaming
group_by: [device_key]
window: 2 days
colour: blue
where:
  kind: mas_attach
  imei: "123"
  seized_total: lots
distinct:
  - {field: facility, min: 2}
`
	_, err := rules.Load(fstest.MapFS{"r.yaml": {Data: []byte(file)}})
	var ps rules.Problems
	require.True(t, errors.As(err, &ps), "%v", err)
	require.ErrorIs(t, err, rules.ErrInvalid)
	type at struct {
		line  int
		field string
	}
	var got []at
	for _, p := range ps {
		require.Equal(t, "r.yaml", p.File)
		got = append(got, at{p.Line, p.Field})
	}
	require.Equal(t, []at{
		{7, "window"},
		{8, "colour"},
		{11, "where.imei"},
		{12, "where.seized_total"},
		{14, "distinct[0].field"},
	}, got, "%v", err)
	require.Contains(t, err.Error(), "r.yaml:8:1: colour: unknown key")
	require.Contains(t, err.Error(), `r.yaml:11:9: where.imei: unknown field "imei"`)
	require.Contains(t, err.Error(), `r.yaml:12:17: where.seized_total: "lots" is not a number`)
}

func TestSyntaxErrorHasItsLine(t *testing.T) {
	_, err := rules.Load(fstest.MapFS{"r.yaml": {Data: []byte(good + "where: {kind: [mas_attach\n")}})
	var ps rules.Problems
	require.True(t, errors.As(err, &ps), "%v", err)
	require.Len(t, ps, 1)
	require.Positive(t, ps[0].Line)
}

// FuzzParse: no rule file, however malformed, makes the loader panic, and a file it
// rejects always says why.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("rule: X\ntype: baseline_threshold\nmode: scheduled\nsource: detections_per_minute\nbaseline: {same_hour_of_day: true}\n"))
	f.Add([]byte("rule: X\ntype: sequence\nmode: scheduled\nthen: {new_term: {field: device_id, history: 1d, source: nope}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	schema, err := schemarules.Compile()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := rules.Parse("r.yaml", data, schema); err != nil {
			var ps rules.Problems
			require.True(t, errors.As(err, &ps))
			require.NotEmpty(t, ps)
		}
	})
}

const growth = "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: scheduled\nsource: serial_block_per_day\nschedule: {every: 1d}\n" +
	"group_by: [tac, serial_block]\nwindow: 7d\ndistinct:\n  - {field: facility_id, min: 3}\n"

// The history each shipped rule needs, as vigiectl rules check and the README say it.
func TestShippedRulesNeeds(t *testing.T) {
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	got := map[string]string{}
	for _, r := range rs {
		need, why := r.Needs()
		got[r.ID] = rules.FormatDuration(need) + " (" + why + ")"
	}
	require.Equal(t, map[string]string{
		"TAC_SPREAD":            "28d (window 7d + baseline 21d)",
		"BATCH_RANGE":           "42d (window 14d + baseline 28d)",
		"NEW_TAC_NATIONAL":      "187d (window 7d + history 180d)",
		"SYNC_BURST":            "28d (baseline 28d)",
		"DRONE_THEN_NEW_DEVICE": "30d (then.new_term.history 30d)",
		"SIM_CHURN_SHARED_SIM":  "0s (a count over a partial window can only undercount)",
		"SEARCH_MISS":           "0s (a count over a partial window can only undercount)",
		"DEVICE_MULTI_SITE":     "0s (streaming: no history)",
		"IMPOSSIBLE_TRAVEL":     "0s (streaming: no history)",
		"SIM_CHURN":             "0s (streaming: no history)",
		"SEIZED_RESURRECTION":   "0s (streaming: no history)",
	}, got)
	for _, r := range rs {
		switch r.ID {
		case "TAC_SPREAD", "BATCH_RANGE":
			require.NotNil(t, r.Growth, r.ID)
			require.Empty(t, r.Where, "%s lists no model: what is usual is learned", r.ID)
		}
	}
}

func TestBaselineAndHistoryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string
	}{
		{"growth ok", growth + "baseline: {window: 14d, new: facility_id, growth: 1, growth_of: [tac]}\n", ""},
		{"needs_history override", growth + "baseline: {window: 14d, new: facility_id}\nneeds_history: 0s\n", ""},
		{"value_count baseline without new", growth + "baseline: {window: 14d}\n", "baseline: a value_count baseline needs new: facility_id"},
		{"growth without new", growth + "baseline: {window: 14d, growth: 2}\n", "baseline: growth and growth_of need new: facility_id"},
		{"growth_of outside group_by", growth + "baseline: {window: 14d, new: facility_id, growth_of: [mcc]}\n", "baseline.growth_of[0]: mcc is not in group_by"},
		{"new must be facility_id", growth + "baseline: {window: 14d, new: tac}\n", "baseline.new: value must be 'facility_id'"},
		{"growth on the national rollup", strings.Replace(growth, "serial_block_per_day", "serial_block_national_per_day", 1) + "baseline: {window: 14d, new: facility_id}\n",
			"baseline.new: table serial_block_national_per_day has no facility_id, so it cannot tell new facilities"},
		{"need beyond the table's TTL", growth + "baseline: {window: 90d, new: facility_id}\n", "X_1 reads 97d of serial_block_per_day (window 7d + baseline 90d), which keeps 90d"},
		{"baseline in days", growth + "baseline: {window: 36h, new: facility_id}\n", "baseline.window: X_1 reads serial_block_per_day, a daily rollup: use whole days"},
		{"same_hour_of_day on value_count", growth + "baseline: {window: 14d, new: facility_id, same_hour_of_day: true}\n", "same_hour_of_day and min_stddev apply to baseline_threshold rules only"},
		{"baseline streaming", good + "baseline: {window: 14d, new: facility_id}\n", "baseline: a baseline needs the history in ClickHouse: use mode scheduled"},
		{"needs_history streaming", good + "needs_history: 3d\n", "needs_history: applies to scheduled rules"},
		{"new_term baseline not shorter than history", "rule: X_1\ntitle: abc\nseverity: low\ntype: sequence\nmode: scheduled\nsource: detections\nschedule: {every: 10m}\ngroup_by: [facility_id]\nwindow: 6h\n" +
			"first: {where: {kind: drone_seen}}\nthen: {new_term: {field: device_id, history: 30d, source: device_presence_per_day, baseline: {window: 30d, stddevs: 3}}}\n",
			"then.new_term.baseline.window: must be positive and shorter than history 30d"},
		{"new_term beyond the TTL", "rule: X_1\ntitle: abc\nseverity: low\ntype: sequence\nmode: scheduled\nsource: detections\nschedule: {every: 10m}\ngroup_by: [facility_id]\nwindow: 6h\n" +
			"first: {where: {kind: drone_seen}}\nthen: {new_term: {field: device_id, history: 120d, source: device_presence_per_day}}\n",
			"then.new_term.history: X_1 reads 120d of device_presence_per_day"},
		{"first new_term", "rule: X_1\ntitle: abc\nseverity: low\ntype: sequence\nmode: scheduled\nsource: detections\nschedule: {every: 10m}\ngroup_by: [facility_id]\nwindow: 6h\n" +
			"first: {new_term: {field: device_id, history: 3d}}\nthen: {where: {kind: drone_seen}}\n",
			"first.new_term: only the then step of a sequence can ask for a new value"},
		{"need on a table without facility", "rule: X_1\ntitle: abc\nseverity: low\ntype: new_term\nmode: scheduled\nsource: serial_block_national_per_day\nschedule: {every: 1d}\ngroup_by: [tac]\nwindow: 7d\nhistory: 30d\n",
			"X_1 needs 37d of history (window 7d + history 30d), and table serial_block_national_per_day has no facility_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := rules.Load(fstest.MapFS{"r.yaml": {Data: []byte(tc.yaml)}})
			if tc.want == "" {
				require.NoError(t, err)
				require.Len(t, rs, 1)
				return
			}
			require.ErrorIs(t, err, rules.ErrInvalid)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
