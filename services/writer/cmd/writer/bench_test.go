package main

import (
	"context"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/writer/internal/chtest"
	"github.com/vigie/vigie/services/writer/internal/kafkatest"
	"github.com/vigie/vigie/services/writer/internal/sample"
)

// benchEvents is the size of the pre-filled topic (BENCH_EVENTS overrides).
func benchEvents(b *testing.B, def int) int {
	if v := os.Getenv("BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		return n
	}
	return def
}

// stopWriter ends the writer with SIGTERM and returns its resource usage.
func stopWriter(b *testing.B, cmd *exec.Cmd) *syscall.Rusage {
	require.NoError(b, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(b, cmd.Wait())
	return cmd.ProcessState.SysUsage().(*syscall.Rusage)
}

func cpu(ru *syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkThroughput pre-fills a 6-partition topic with realistic enriched events, then
// times the writer process from start until ClickHouse holds them all. Run with
// -benchtime=1x; reports rows/s, rows per CPU-second of the writer, its peak RSS, and the
// CPU seconds the broker and the ClickHouse server spent meanwhile.
func BenchmarkThroughput(b *testing.B) {
	gen := sample.New(1, 50_000, time.Now().Add(-24*time.Hour))
	throughput(b, gen.JSON)
}

// BenchmarkThroughputMonthsAlternating is BenchmarkThroughput with every other event five
// weeks older than its neighbours: two months alternate in every batch.
func BenchmarkThroughputMonthsAlternating(b *testing.B) {
	gen := sample.New(1, 50_000, time.Now().Add(-24*time.Hour))
	i := 0
	throughput(b, func() ([]byte, []byte) {
		i++
		e := gen.Next()
		if i%2 == 0 {
			e.ObservedAt = event.NewTime(e.ObservedAt.AddDate(0, 0, -35))
		}
		v, err := event.EncodeEnriched(nil, &e)
		require.NoError(b, err)
		return []byte(e.Enrichment.DeviceKey), v
	})
}

func throughput(b *testing.B, next func() (key, value []byte)) {
	n := benchEvents(b, 500_000)
	bin := buildWriter(b)
	conn, db := chtest.Database(b)
	topic, dlq := kafkatest.Topics(b, 6)
	kafkatest.Produce(b, kafkatest.Producer(b, topic), n, next)
	brokerPID, chPID := listenerPID(testenv.KafkaBrokers(b)[0]), listenerPID(testenv.ClickHouseAddr(b))

	b.ResetTimer()
	for range b.N {
		broker0, ch0 := cpuSeconds(brokerPID), cpuSeconds(chPID)
		start := time.Now()
		cmd := exec.Command(bin)
		cmd.Env, cmd.Stderr = writerEnv(b, topic, dlq, db), os.Stderr
		require.NoError(b, cmd.Start())
		require.Eventually(b, func() bool { return chtest.Written(b, conn, db) >= uint64(n) },
			10*time.Minute, 50*time.Millisecond)
		took := time.Since(start)
		broker, ch := cpuSeconds(brokerPID)-broker0, cpuSeconds(chPID)-ch0
		ru := stopWriter(b, cmd)
		b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(n)/cpu(ru), "rows/cpu-s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "writer-rss-MB")
		b.ReportMetric(cpu(ru), "writer-cpu-s")
		b.ReportMetric(broker, "broker-cpu-s")
		b.ReportMetric(ch, "clickhouse-cpu-s")
		b.ReportMetric(took.Seconds(), "wall-s")
	}
	b.StopTimer()
	chtest.RequireConsistent(b, chtest.Count(b, conn, db), uint64(n))
}

// BenchmarkLatency produces at a steady rate (BENCH_RATE, default 20,000 events/s) for
// BENCH_SECONDS (default 30) while the writer runs, and measures Kafka-to-queryable
// latency: event i was produced at p[i]; it is queryable at the first poll (every 25 ms)
// whose count() exceeds i. Reports p50, p99 and max.
func BenchmarkLatency(b *testing.B) {
	rate, seconds := 20_000, 30
	if v := os.Getenv("BENCH_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("BENCH_SECONDS"); v != "" {
		seconds, _ = strconv.Atoi(v)
	}
	bin := buildWriter(b)
	conn, db := chtest.Database(b)
	topic, dlq := kafkatest.Topics(b, 6)
	producer := kafkatest.Producer(b, topic)
	gen := sample.New(2, 50_000, time.Now())
	brokerPID, chPID := listenerPID(testenv.KafkaBrokers(b)[0]), listenerPID(testenv.ClickHouseAddr(b))

	cmd := exec.Command(bin)
	cmd.Env, cmd.Stderr = writerEnv(b, topic, dlq, db, "VIGIE_WRITER_CONSUMER_BATCH_WAIT="+envOr("BENCH_BATCH_DELAY", "500ms")), os.Stderr
	require.NoError(b, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()

	total := rate * seconds
	produced := make([]time.Time, total)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	visible := make(chan []time.Duration, 1)
	go func() {
		var lat []time.Duration
		next := 0
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for next < total {
			select {
			case <-ctx.Done():
				visible <- lat
				return
			case now := <-tick.C:
				var c uint64
				if err := conn.QueryRow(ctx, "SELECT sum(rows) FROM `"+db+"`.writer_offsets").Scan(&c); err != nil {
					continue
				}
				for ; next < int(c) && next < total; next++ {
					lat = append(lat, now.Sub(produced[next]))
				}
			}
		}
		visible <- lat
	}()

	// Events are encoded before the clock starts; they are sent in 10 ms steps of rate/100,
	// each stamped when its produce request is acknowledged.
	const step = 10 * time.Millisecond
	perStep := rate / 100
	all := make([]kafka.Message, total)
	for i := range all {
		k, v := gen.JSON()
		all[i] = kafka.Message{Key: k, Value: v}
	}
	b.ResetTimer()
	broker0, ch0 := cpuSeconds(brokerPID), cpuSeconds(chPID)
	start := time.Now()
	for i := 0; i < total; {
		msgs := all[i:min(i+perStep, total)]
		require.NoError(b, producer.Write(ctx, msgs...))
		sent := time.Now()
		for j := range msgs {
			produced[i+j] = sent
		}
		i += len(msgs)
		time.Sleep(time.Until(start.Add(time.Duration(i/perStep) * step)))
	}
	produceTook := time.Since(start)
	var lat []time.Duration
	select {
	case lat = <-visible:
	case <-time.After(2 * time.Minute):
		cancel()
		lat = <-visible
	}
	b.StopTimer()
	broker, ch := cpuSeconds(brokerPID)-broker0, cpuSeconds(chPID)-ch0
	ru := stopWriter(b, cmd)
	require.Len(b, lat, total, "every event became queryable")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))].Seconds() }
	b.ReportMetric(float64(total)/produceTook.Seconds(), "events/s")
	b.ReportMetric(q(0.5), "p50-s")
	b.ReportMetric(q(0.99), "p99-s")
	b.ReportMetric(q(1), "max-s")
	b.ReportMetric(cpu(ru)/produceTook.Seconds(), "writer-cores")
	b.ReportMetric(broker/produceTook.Seconds(), "broker-cores")
	b.ReportMetric(ch/produceTook.Seconds(), "clickhouse-cores")
	b.ReportMetric(float64(ru.Maxrss)/1024, "writer-rss-MB")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
