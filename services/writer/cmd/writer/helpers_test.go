package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
)

// buildWriter builds this command into a temporary folder.
func buildWriter(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "writer")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "build the writer")
	return bin
}

// writerEnv configures a writer process for topic, dlq and database db.
func writerEnv(t testing.TB, topic, dlq, db string, extra ...string) []string {
	return append(append(os.Environ(),
		"VIGIE_WRITER_KAFKA_BROKERS="+strings.Join(testenv.KafkaBrokers(t), ","),
		"VIGIE_WRITER_TOPICS_ENRICHED="+topic,
		"VIGIE_WRITER_TOPICS_DLQ="+dlq,
		"VIGIE_WRITER_CONSUMER_GROUP_ID="+testenv.Name(t, "group"),
		"VIGIE_WRITER_CLICKHOUSE_ADDRS="+testenv.ClickHouseAddr(t),
		"VIGIE_WRITER_CLICKHOUSE_DATABASE="+db,
		"VIGIE_WRITER_ADMIN_LISTEN="+envOr("WRITER_ADMIN_ADDR", "127.0.0.1:0"),
		"VIGIE_WRITER_LOG_LEVEL=warn",
	), extra...)
}

var ssPID = regexp.MustCompile(`pid=([0-9]+)`)

// listenerPID returns the pid of the process listening on addr's port, or 0.
func listenerPID(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("ss", "-ltnpH", "sport = :"+port).Output()
	if err != nil {
		return 0
	}
	m := ssPID.FindSubmatch(out)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// cpuSeconds returns the user+system CPU time of pid so far, or 0.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are the 14th and 15th.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ = 100)
}
