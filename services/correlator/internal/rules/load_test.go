package rules_test

import (
	"errors"
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
		{"national rollup has no facility key", "rule: X_1\ntitle: abc\nseverity: low\ntype: value_count\nmode: scheduled\nsource: tac_block_national_per_day\nschedule: {every: 1d}\ngroup_by: [tac, facility_id]\nwindow: 1d\ndistinct:\n  - {field: facility_id, min: 2}\n",
			[]string{"source: table tac_block_national_per_day has no field facility_id"}},
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
