// Package kafkatest gives the writer's integration tests topics on the real broker,
// a fast producer and a reader of the dead-letter topic.
package kafkatest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
)

// Topics creates a uniquely named source topic with partitions partitions and a one-partition
// dead-letter topic.
func Topics(t testing.TB, partitions int) (source, dlq string) {
	t.Helper()
	source, dlq = testenv.Name(t, "enriched"), testenv.Name(t, "dlq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, testenv.KafkaBrokers(t),
		kafka.TopicSpec{Name: source, Partitions: partitions, ReplicationFactor: 1},
		kafka.TopicSpec{Name: dlq, Partitions: 1, ReplicationFactor: 1}))
	return source, dlq
}

// Producer returns a synchronous producer to topic, closed at the end of the test. Keys
// are hashed to partitions as in production.
func Producer(t testing.TB, topic string) *kafkago.Writer {
	t.Helper()
	cfg := kafka.DefaultProducerConfig()
	cfg.Brokers = testenv.KafkaBrokers(t)
	cfg.BatchSize = 500 // about 700 KB: under the broker's 1 MB message limit
	w, err := kafka.NewWriter(cfg, topic)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// Produce sends n messages made by next, in chunks.
func Produce(t testing.TB, w *kafkago.Writer, n int, next func() (key, value []byte)) {
	t.Helper()
	ctx := context.Background()
	const chunk = 5000
	msgs := make([]kafkago.Message, 0, chunk)
	for i := 0; i < n; i++ {
		k, v := next()
		msgs = append(msgs, kafkago.Message{Key: k, Value: v})
		if len(msgs) == chunk || i == n-1 {
			require.NoError(t, w.WriteMessages(ctx, msgs...))
			msgs = msgs[:0]
		}
	}
}

// DeadLetters reads every record of the one-partition dead-letter topic.
func DeadLetters(t testing.TB, topic string) []event.DLQ {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kafka.PartitionOffsets(ctx, testenv.KafkaBrokers(t), topic)
	require.NoError(t, err)
	end := ends[0]
	if end == 0 {
		return nil
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: testenv.KafkaBrokers(t), Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []event.DLQ
	for {
		m, err := r.ReadMessage(ctx)
		require.NoError(t, err)
		var rec event.DLQ
		require.NoError(t, json.Unmarshal(m.Value, &rec))
		out = append(out, rec)
		if m.Offset+1 >= end {
			return out
		}
	}
}
