package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/vigiectl/internal/cli"
)

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	return filepath.Join(root, rel)
}

func TestRulesCheck(t *testing.T) {
	code, out, errOut := run(t, "rules", "check", repoPath(t, "schemas/rules"))
	require.Equal(t, cli.ExitOK, code, out+errOut)
	require.True(t, strings.HasSuffix(out, "\n1 rule path ok\n"), out)
	// Each rule and the history it needs (issue 14).
	require.Regexp(t, `(?m)^NEW_TAC_NATIONAL +scheduled +needs 187d of history +window 7d \+ history 180d$`, out)
	require.Regexp(t, `(?m)^DEVICE_MULTI_SITE +streaming +needs no history +streaming: no history$`, out)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("id: BAD\nmode: streaming\nwindw: 10m\n"), 0o644))
	code, out, errOut = run(t, "rules", "check", bad)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, out, bad+":", "each problem names the file and line")
	require.Contains(t, errOut, "the rule files have problems")
}

func TestRulesTest(t *testing.T) {
	events := exampleEvents(t)
	ndjson, err := os.ReadFile(events)
	require.NoError(t, err)
	rule := repoPath(t, "schemas/rules/device_multi_site.yaml")

	code, out, errOut := run(t, "rules", "test", rule, "-events", events)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "streaming rule (DEVICE_MULTI_SITE)")

	// -events - reads stdin; flags may come before the files.
	var stdout, stderr bytes.Buffer
	code = cli.Run(context.Background(), []string{"rules", "test", "-events=-", rule}, bytes.NewReader(ndjson), &stdout, &stderr)
	require.Equal(t, cli.ExitOK, code, stderr.String())
	require.Equal(t, out, stdout.String())

	code, _, errOut = run(t, "rules", "test", rule, "-events", filepath.Join(t.TempDir(), "missing.ndjson"))
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "missing.ndjson")
	require.True(t, strings.HasPrefix(errOut, "vigiectl rules test: "), errOut)
}

// exampleEvents writes the enriched examples of schemas/events, one per line, as the topic
// carries them, and returns the file.
func exampleEvents(t *testing.T) string {
	t.Helper()
	var ndjson bytes.Buffer
	matches, err := filepath.Glob(repoPath(t, "schemas/events/examples/enriched/*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	for _, m := range matches {
		data, err := os.ReadFile(m)
		require.NoError(t, err)
		require.NoError(t, json.Compact(&ndjson, data))
		ndjson.WriteByte('\n')
	}
	events := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(events, ndjson.Bytes(), 0o644))
	return events
}

// The examples hold a seized phone seen again 1.7 h later at cp-aix-luynes: planted as
// SEIZED_RESURRECTION's fact, it is found at once; a DEVICE_MULTI_SITE decoy stays quiet; a
// planted IMPOSSIBLE_TRAVEL is not found.
func TestRulesTestTruth(t *testing.T) {
	events := exampleEvents(t)
	truth := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, os.WriteFile(truth, []byte(`{"run_id":"x","start":"2026-10-01T00:00:00Z","end":"2026-11-26T00:00:00Z",
	"findings":[
	  {"scenario":"seized-resurrection","rule":"SEIZED_RESURRECTION","facilities":["cp-aix-luynes"],"since":"2026-11-25T07:30:00Z","at":"2026-11-25T09:14:07.125Z","delay":0,"history":0,"summary":"a seized phone back"},
	  {"scenario":"cloned-imei","rule":"IMPOSSIBLE_TRAVEL","facilities":["ma-a","cd-b"],"since":"2026-11-20T00:00:00Z","at":"2026-11-20T00:10:00Z","delay":0,"history":0,"summary":"a clone"}],
	"decoys":[
	  {"scenario":"inmate-transfer","rule":"DEVICE_MULTI_SITE","facilities":["cp-aix-luynes","ma-a"],"since":"2026-11-01T00:00:00Z","at":"2026-11-16T00:00:00Z","delay":0,"history":0,"summary":"15 days apart"}]}`), 0o644))
	code, out, errOut := run(t, "rules", "test", repoPath(t, "schemas/rules"), "-events", events, "-truth", truth)
	require.Equal(t, cli.ExitOK, code, errOut)
	t.Log("\n" + out)
	row := func(rule string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "| "+rule+" ") {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		t.Fatalf("no row for %s in:\n%s", rule, out)
		return ""
	}
	require.Equal(t, "| SEIZED_RESURRECTION | streaming | none | 1 | 0 | 1 / 1 | 1 / 1 | 0 / 0 | – | – |", row("SEIZED_RESURRECTION"))
	require.Equal(t, "| IMPOSSIBLE_TRAVEL | streaming | none | 0 | 0 | 0 / 1 | 0 / 1 | – / 0 | – | – |", row("IMPOSSIBLE_TRAVEL"))
	require.Equal(t, "| DEVICE_MULTI_SITE | streaming | none | 0 | 0 | – | – | – | 1 / 1 | – |", row("DEVICE_MULTI_SITE"))
	require.Equal(t, "| TAC_SPREAD | scheduled, not evaluated | 28d | 0 | 0 | – | – | – | – | – |", row("TAC_SPREAD"))
	require.Contains(t, out, "precision of all findings: 1.00 (1 of 1 about a plant)\n")
	require.Contains(t, out, "- IMPOSSIBLE_TRAVEL: not found: cloned-imei IMPOSSIBLE_TRAVEL at 2026-11-20T00:10:00Z, ma-a, cd-b (a clone)\n")

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"start":"2026-10-01T00:00:00Z"}`), 0o644))
	code, _, errOut = run(t, "rules", "test", repoPath(t, "schemas/rules"), "-events", events, "-truth", bad)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "truth: planted summary: start and end must be set")
}
