package conformance

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPythonClients runs python/clients.py, with clickhouse-connect (HTTP), clickhouse-driver
// (native protocol) and pyarrow, from the virtual environment `make deps` installs
// (deploy/local/chserver/pyclients.sh).
func TestPythonClients(t *testing.T) {
	venv, err := repoFile(".cache/chserver-py/bin/python")
	require.NoError(t, err, "the Python clients are not installed: run `make deps` (deploy/local/chserver/pyclients.sh)")
	script, err := filepath.Abs("python/clients.py")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, venv, "-u", script)
	cmd.Env = append(os.Environ(), "CHSERVER_HTTP="+chserverHTTPAddr, "CHSERVER_NATIVE="+chserverAddr,
		"CHSERVER_USER="+adminUser, "CHSERVER_PASSWORD="+adminPassword)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err, "python clients failed")
	require.Contains(t, string(out), " 0 failed")
}

// TestCurl asks as an analyst's curl does: the query in the body, a compressed answer.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	require.NoError(t, err, "curl is needed")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--fail-with-body", "--compressed", "-u", adminUser+":"+adminPassword,
		"http://"+chserverHTTPAddr+"/?enable_http_compression=1&max_block_size=10",
		"--data-binary", "SELECT number, toString(number) AS s FROM numbers(100) FORMAT JSONCompact").Output()
	require.NoError(t, err, "%s", out)
	var doc struct{ Rows int }
	require.NoError(t, json.Unmarshal(out, &doc))
	require.Equal(t, 100, doc.Rows)
	out, err = exec.CommandContext(ctx, curl, "-sS", "-G", "-u", adminUser+":"+adminPassword, "http://"+chserverHTTPAddr+"/",
		"--data-urlencode", "query=SELECT {n:UInt8} * 2", "--data-urlencode", "param_n=21").Output()
	require.NoError(t, err)
	require.Equal(t, "42", strings.TrimSpace(string(out)))
}
