package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/writer/internal/chtest"
	"github.com/vigie/vigie/services/writer/internal/kafkatest"
	"github.com/vigie/vigie/services/writer/internal/sample"
)

// TestSurvivesSIGKILL runs the writer binary, kills it with SIGKILL at random moments while
// it writes, restarts it each time, and checks that ClickHouse ends with every event once.
// WRITER_KILLS sets the number of kills (default 3; `make test-writer-kill` uses 10).
func TestSurvivesSIGKILL(t *testing.T) {
	kills := 3
	if v := os.Getenv("WRITER_KILLS"); v != "" {
		var err error
		kills, err = strconv.Atoi(v)
		require.NoError(t, err, "WRITER_KILLS")
	}
	const total = 200_000
	bin := buildWriter(t)

	conn, db := chtest.Database(t)
	topic, dlq := kafkatest.Topics(t, 6)
	producer := kafkatest.Producer(t, topic)
	gen := sample.New(42, 20_000, time.Now().Add(-2*time.Hour))
	rows := func() uint64 { return chtest.Written(t, conn, db) }

	env := writerEnv(t, topic, dlq, db,
		"VIGIE_WRITER_CONSUMER_BATCH_SIZE=5000",
		"VIGIE_WRITER_CONSUMER_BATCH_WAIT=200ms",
		"VIGIE_WRITER_CONSUMER_SESSION_TIMEOUT=6s",
	)
	logs, err := os.Create(filepath.Join(t.TempDir(), "writer.log"))
	require.NoError(t, err)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("writer logs:\n%s", b)
		}
	}()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
		require.NoError(t, cmd.Start())
		return cmd
	}

	// Each run gets a fresh slice of events so that every kill lands while the writer is
	// writing: after it has written something, at a random moment within 400 ms.
	slice := total / (kills + 1)
	produced := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := range kills {
		kafkatest.Produce(t, producer, slice, gen.JSON)
		produced += slice
		before := rows()
		cmd := start()
		require.Eventually(t, func() bool { return rows() > before }, 60*time.Second, 20*time.Millisecond, "run %d writes", k)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		t.Logf("kill %d: %d of %d produced rows written", k+1, rows(), produced)
	}
	kafkatest.Produce(t, producer, total-produced, gen.JSON)
	cmd := start()
	require.Eventually(t, func() bool { return rows() >= total }, 120*time.Second, 100*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "graceful exit")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("writer did not exit within 30 s of SIGTERM")
	}

	chtest.RequireConsistent(t, chtest.Count(t, conn, db), total)
	require.Empty(t, kafkatest.DeadLetters(t, dlq))
}
