package app_test

import (
	"context"
	"sort"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// BenchmarkEventToAlert measures, through Kafka and ClickHouse, the time from producing the
// event that completes a pattern (IMPOSSIBLE_TRAVEL) to reading its alert on the alerts
// topic: go test -run=^$ -bench=BenchmarkEventToAlert -benchtime=50x ./internal/app/
func BenchmarkEventToAlert(b *testing.B) {
	e := newEnvB(b)
	r := e.start("latency")
	defer func() { _ = r.stop() }()
	ref, err := scenario.DefaultReference()
	require.NoError(b, err)
	g := scenario.New(ref, 99, "lat")
	fa, fb := g.FarApart(150)
	cfg := kafka.DefaultProducerConfig()
	cfg.BatchTimeout = time.Millisecond
	w, err := kafka.NewProducer(e.kafka, cfg, e.topic)
	require.NoError(b, err)
	defer w.Close()
	rd := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kafka.Brokers, Topic: e.alerts, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond})
	defer rd.Close()
	send := func(ev event.Enriched) {
		v, err := event.EncodeEnriched(nil, &ev)
		require.NoError(b, err)
		require.NoError(b, w.Write(e.ctx, kafka.Message{Key: []byte(ev.Enrichment.DeviceKey), Value: v}))
	}
	start := time.Now().UTC().Add(-24 * time.Hour)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		d := g.NewDevice(scenario.CommonTACs[0])
		t0 := start.Add(time.Duration(i) * time.Minute)
		send(g.Radio(event.KindMASAttach, d, fa, t0))
		began := time.Now()
		send(g.Radio(event.KindMASAttach, d, fb, t0.Add(30*time.Second)))
		for {
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			m, err := rd.ReadMessage(ctx)
			cancel()
			require.NoError(b, err)
			var a alert.Alert
			require.NoError(b, event.DecodeAlert(m.Value, &a))
			if a.Rule == "IMPOSSIBLE_TRAVEL" && a.GroupKey == d.IMEI {
				break
			}
		}
		lat = append(lat, time.Since(began))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(lat[len(lat)/2].Seconds()*1000, "p50-ms")
	b.ReportMetric(lat[(len(lat)*99)/100].Seconds()*1000, "p99-ms")
	b.ReportMetric(lat[len(lat)-1].Seconds()*1000, "max-ms")
}
