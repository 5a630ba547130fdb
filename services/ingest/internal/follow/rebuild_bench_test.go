package follow

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRebuild fills a topic of 6 partitions with 200,000 raw records of the last
// minutes (about 10 minutes of 330 events/s, or 10 s of 20,000/s), then times a follower's
// rebuild of the window from it against the real broker: wall time, messages per second
// and CPU per message (of this process: the follower and kafka-go's reader).
//
//	go test -run XXX -bench Rebuild -benchtime 1x ./internal/follow
func BenchmarkRebuild(b *testing.B) {
	const n = 200_000
	conn := kafka.Config{Brokers: testenv.KafkaBrokers(b)}
	ctx := context.Background()
	topic := testenv.Name(b, "rebuild")
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: 6}}, zap.NewNop())
	require.NoError(b, err)
	p, err := kafka.NewProducer(conn, kafka.DefaultProducerConfig(), topic)
	require.NoError(b, err)
	now := time.Now()
	batch := make([]kafka.Message, 0, 5000)
	for i := range n {
		batch = append(batch, kafka.Message{Key: []byte("sensor-" + strconv.Itoa(i%24)), Value: rawRecord(b, "tecore:01JDQ:"+strconv.Itoa(i), now), Time: now})
		if len(batch) == cap(batch) {
			require.NoError(b, p.Write(ctx, batch...))
			batch = batch[:0]
		}
	}
	require.NoError(b, p.Close())

	for b.Loop() {
		seen := dedup.New(10*time.Minute, time.Now)
		f, err := New(conn, topic, 10*time.Minute, false, seen, zap.NewNop(), prometheus.NewRegistry(), prometheus.NewRegistry())
		require.NoError(b, err)
		cpu0, start := cpuTime(), time.Now()
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		select {
		case <-f.Done():
		case <-time.After(5 * time.Minute):
			b.Fatal("not rebuilt within 5 minutes")
		}
		wall, cpu := time.Since(start), cpuTime()-cpu0
		require.NoError(b, f.Stop(ctx))
		require.NoError(b, <-done)
		require.Equal(b, n, seen.Len())
		b.ReportMetric(wall.Seconds(), "rebuild-s")
		b.ReportMetric(n/wall.Seconds(), "msgs/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/msg")
	}
}
