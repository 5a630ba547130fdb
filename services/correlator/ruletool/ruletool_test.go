package ruletool_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/ruletool"
)

// shipped is the folder of the rules built into the correlator.
const shipped = "../../../schemas/rules"

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestCheckNamesEachProblemAtItsLine(t *testing.T) {
	p := write(t, "bad.yaml", `rule: MULTI_SITE_FAST
title: One device at two facilities within a day
severity: medium
type: value_count
mode: streaming
where:
  imei: {present: true}
group_by: [device_key]
window: 1 day
distinct:
  - {field: facility_id, min: 2}
  - {field: sim, min: 2}
update_evry: 1h
`)
	got := ruletool.Check([]string{p})
	var lines []string
	for _, pr := range got {
		line, _, _ := strings.Cut(strings.TrimPrefix(pr.String(), p), " (known: ")
		lines = append(lines, line)
	}
	require.Equal(t, []string{
		`:7: where.imei: unknown field "imei"`,
		`:9: window: '1 day' does not match pattern '^[0-9]+(ms|s|m|h|d|w)$'`,
		`:12: distinct[1].field: unknown field "sim"`,
		`:13: update_evry: unknown key`,
	}, lines)
	require.Contains(t, got[0].Message, "(known: band, building, cell, country,")
	require.Equal(t, p, got[0].File)
	require.Equal(t, 7, got[0].Line)
}

func TestCheckShippedRulesAndDuplicates(t *testing.T) {
	require.Empty(t, ruletool.Check([]string{shipped}), "the shipped rules load")
	dup := filepath.Join(shipped, "device_multi_site.yaml")
	got := ruletool.Check([]string{shipped, dup})
	require.Len(t, got, 1)
	require.Equal(t, dup, got[0].File)
	require.Equal(t, 2, got[0].Line)
	require.Contains(t, got[0].Message, "rule DEVICE_MULTI_SITE already defined in")
	missing := ruletool.Check([]string{filepath.Join(t.TempDir(), "nope.yaml")})
	require.Len(t, missing, 1)
	require.Zero(t, missing[0].Line)
	empty := ruletool.Check([]string{t.TempDir()})
	require.Len(t, empty, 1)
	require.Contains(t, empty[0].String(), ": no *.yaml rule file in this directory")
}

// ndjson encodes events as the enriched topic carries them, one per line.
func ndjson(t *testing.T, es []event.Enriched) *bytes.Buffer {
	var b bytes.Buffer
	for i := range es {
		line, err := event.EncodeEnriched(nil, &es[i])
		require.NoError(t, err)
		b.Write(line)
		b.WriteByte('\n')
	}
	return &b
}

func TestTestRunsTheStreamingRules(t *testing.T) {
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	g := scenario.New(ref, 4, "rt")
	at := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	a, b := g.Facility(1), g.Facility(2)
	paths := []string{filepath.Join(shipped, "device_multi_site.yaml"), filepath.Join(shipped, "tac_spread.yaml")}

	t.Run("fires", func(t *testing.T) {
		p := g.MultiSite(a, b, at)
		var out bytes.Buffer
		require.NoError(t, ruletool.Test(context.Background(), paths, ndjson(t, p.Events), &out))
		t.Log("\n" + out.String())
		want := p.Expect[0]
		require.Contains(t, out.String(), "DEVICE_MULTI_SITE (medium) device "+want.GroupKey+"\n")
		require.Contains(t, out.String(), "  facilities:  "+strings.Join(want.Facilities, ", ")+"\n")
		require.Contains(t, out.String(), "  evidence:    2: "+p.Events[0].EventID)
		require.Contains(t, out.String(), "  explanation: device "+want.GroupKey+" seen at 2 facilities")
		require.Contains(t, out.String(), "4 events, 1 finding from 1 streaming rule (DEVICE_MULTI_SITE)\n")
		require.Contains(t, out.String(), "not evaluated: TAC_SPREAD (scheduled: needs ClickHouse)\n")
	})
	t.Run("silent", func(t *testing.T) {
		d := g.NewDevice(scenario.CommonTACs[0])
		es := []event.Enriched{
			g.Radio(event.KindMASAttach, d, a, at), g.Radio(event.KindCallAttempt, d, a, at.Add(time.Hour)),
			g.Radio(event.KindMASAttach, d, a, at.Add(72*time.Hour)),
		}
		var out bytes.Buffer
		require.NoError(t, ruletool.Test(context.Background(), paths, ndjson(t, es), &out))
		require.NotContains(t, out.String(), "DEVICE_MULTI_SITE (")
		require.Contains(t, out.String(), "3 events, 0 findings from 1 streaming rule (DEVICE_MULTI_SITE)\n")
	})
	t.Run("bad event names its line", func(t *testing.T) {
		p := g.MultiSite(a, b, at)
		in := ndjson(t, p.Events[:1])
		in.WriteString("\n{\"event_id\": 12}\n")
		err := ruletool.Test(context.Background(), paths, in, &bytes.Buffer{})
		require.ErrorContains(t, err, "events line 3: not an enriched event")
	})
	t.Run("rules that do not load", func(t *testing.T) {
		bad := write(t, "bad.yaml", "rule: X_1\n")
		err := ruletool.Test(context.Background(), []string{bad}, strings.NewReader(""), &bytes.Buffer{})
		require.ErrorContains(t, err, "bad.yaml:1:1: (root): missing properties")
	})
}
