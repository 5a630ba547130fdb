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
	require.Equal(t, "1 rule path ok\n", out)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("id: BAD\nmode: streaming\nwindw: 10m\n"), 0o644))
	code, out, errOut = run(t, "rules", "check", bad)
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, out, bad+":", "each problem names the file and line")
	require.Contains(t, errOut, "the rule files have problems")
}

func TestRulesTest(t *testing.T) {
	// The enriched examples of schemas/events, one per line, as the topic carries them.
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
	rule := repoPath(t, "schemas/rules/device_multi_site.yaml")

	code, out, errOut := run(t, "rules", "test", rule, "-events", events)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "streaming rule (DEVICE_MULTI_SITE)")

	// -events - reads stdin; flags may come before the files.
	var stdout, stderr bytes.Buffer
	code = cli.Run(context.Background(), []string{"rules", "test", "-events=-", rule}, bytes.NewReader(ndjson.Bytes()), &stdout, &stderr)
	require.Equal(t, cli.ExitOK, code, stderr.String())
	require.Equal(t, out, stdout.String())

	code, _, errOut = run(t, "rules", "test", rule, "-events", filepath.Join(t.TempDir(), "missing.ndjson"))
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, "missing.ndjson")
	require.True(t, strings.HasPrefix(errOut, "vigiectl rules test: "), errOut)
}
