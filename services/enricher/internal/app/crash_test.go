package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reftest"
)

// buildBinary builds the enricher command once for the tests that run it as a process.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enricher")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vigie/vigie/services/enricher/cmd/enricher")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

func processEnv(cfg *Config) []string {
	env := os.Environ()
	set := map[string]string{
		"KAFKA_BROKERS":       strings.Join(cfg.Kafka.Brokers, ","),
		"TOPICS_RAW":          cfg.Topics.Raw,
		"TOPICS_ENRICHED":     cfg.Topics.Enriched,
		"TOPICS_DLQ":          cfg.Topics.DLQ,
		"CONSUMER_GROUP_ID":   cfg.Consumer.GroupID,
		"CONSUMER_BATCH_SIZE": fmt.Sprint(cfg.Consumer.BatchSize),
		"PRODUCER_BATCH_SIZE": fmt.Sprint(cfg.Producer.BatchSize),
		"REFERENCE_DIR":       cfg.Reference.Dir,
		"ADMIN_LISTEN":        "127.0.0.1:0",
		"LOG_LEVEL":           "warn",
	}
	for k, v := range set {
		env = append(env, EnvPrefix+"_"+k+"="+v)
	}
	return env
}

func enrichedCount(t testing.TB, cfg *Config) int64 {
	t.Helper()
	offsets, err := kafka.PartitionOffsets(context.Background(), cfg.Kafka, cfg.Topics.Enriched)
	require.NoError(t, err)
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// TestKilledMidStream kills the enricher process with SIGKILL several times while it works
// through a stream, restarting it each time: every raw event still comes out enriched.
func TestKilledMidStream(t *testing.T) {
	bin := buildBinary(t)
	cfg, snap := testConfig(t, reftest.Options{Seed: 15})
	cfg.Consumer.BatchSize = 300
	// Enough events that the kills land mid-stream although the enricher handles the four
	// partitions concurrently and gets several thousand events further between two polls.
	const n = 48000
	events := reftest.Events(snap, n, 4)
	produceRaw(t, cfg, events)

	const kills = 3
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin)
		cmd.Env = processEnv(cfg)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // when the test fails first
		before := enrichedCount(t, cfg)
		// Kill once it has produced some more, in the middle of its work.
		require.Eventually(t, func() bool { return enrichedCount(t, cfg) >= before+n/12 }, 60*time.Second, 2*time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		t.Logf("kill %d at %d enriched messages", i+1, enrichedCount(t, cfg))
	}
	require.Less(t, enrichedCount(t, cfg), int64(len(events)), "killed mid-stream")

	cmd := exec.Command(bin)
	cmd.Env = processEnv(cfg)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	out := readTopic(t, cfg, cfg.Topics.Enriched, len(events), 120*time.Second, 2*time.Second)
	got, dups := enrichedByID(t, out)
	for _, ev := range events {
		_, ok := got[ev.EventID]
		require.True(t, ok, "event %s lost across kills", ev.EventID)
	}
	t.Logf("%d events, %d messages, %d duplicates from %d kills (at-least-once)", len(events), len(out.msgs), dups, kills)
}

// TestRebalanceLosesNothing runs two enrichers in one group, then stops one mid-stream and
// starts a third: the partitions move and every event comes out.
func TestRebalanceLosesNothing(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 16})
	cfg.Consumer.BatchSize = 200
	events := reftest.Events(snap, 8000, 6)
	produceRaw(t, cfg, events)

	a := start(t, cfg)
	b := start(t, cfg)
	total := func() float64 {
		return metric(t, a.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"}) +
			metric(t, b.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"})
	}
	require.Eventually(t, func() bool { return total() >= 2000 }, 60*time.Second, 2*time.Millisecond)
	a.stop(t)
	c := start(t, cfg)

	out := readTopic(t, cfg, cfg.Topics.Enriched, len(events), 120*time.Second, 2*time.Second)
	got, dups := enrichedByID(t, out)
	for _, ev := range events {
		_, ok := got[ev.EventID]
		require.True(t, ok, "event %s lost in the rebalance", ev.EventID)
	}
	handled := metric(t, b.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"}) +
		metric(t, c.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"})
	t.Logf("%d events, %d duplicates; after the first left, the others handled %.0f", len(events), dups, handled)
}

// TestProcessVersionAndSIGHUP runs the binary: -version answers without starting; SIGHUP
// reads the reference data again (same files: unchanged) without ending the process, which
// keeps enriching; SIGTERM ends it cleanly (exit status 0).
func TestProcessVersionAndSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "-version").CombinedOutput()
	require.NoError(t, err, string(out))
	require.True(t, strings.HasPrefix(string(out), Name+" "), string(out))

	cfg, snap := testConfig(t, reftest.Options{Seed: 18})
	admin := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(processEnv(cfg), EnvPrefix+"_ADMIN_LISTEN="+admin)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	require.Eventually(t, func() bool { return readyz(admin) == http.StatusOK }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
		return scrape(t, admin)[`vigie_enricher_reference_reloads_total{result="unchanged"}`] >= 1
	}, 10*time.Second, 100*time.Millisecond)

	events := reftest.Events(snap, 300, 7)
	produceRaw(t, cfg, events)
	got := readTopic(t, cfg, cfg.Topics.Enriched, len(events), 60*time.Second, 0)
	require.Len(t, got.msgs, len(events), "still enriching after SIGHUP")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	exited = true
	require.NoError(t, cmd.Wait(), "a graceful stop exits 0")
}
