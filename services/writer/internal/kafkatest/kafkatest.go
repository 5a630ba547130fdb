// Package kafkatest gives the writer's integration tests topics on the real broker,
// a fast producer and a reader of the dead-letter topic.
package kafkatest

import (
	"context"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
)

// Conn is the connection to the test broker.
func Conn(t testing.TB) kafka.Config {
	c := kafka.DefaultConfig()
	c.Brokers = testenv.KafkaBrokers(t)
	return c
}

// Topics creates, with kafka.ApplyTopics, a uniquely named source topic with partitions
// partitions and a one-partition dead-letter topic.
func Topics(t testing.TB, partitions int) (source, dlq string) {
	t.Helper()
	source, dlq = testenv.Name(t, "enriched"), testenv.Name(t, "dlq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := kafka.ApplyTopics(ctx, Conn(t), []kafka.TopicSpec{
		{Name: source, Partitions: partitions, ReplicationFactor: 1},
		{Name: dlq, Partitions: 1, ReplicationFactor: 1},
	}, zap.NewNop())
	require.NoError(t, err)
	return source, dlq
}

// Producer returns a synchronous producer to topic, closed at the end of the test. Keys
// are hashed to partitions as in production.
func Producer(t testing.TB, topic string) *kafka.Producer {
	t.Helper()
	cfg := kafka.DefaultProducerConfig()
	cfg.BatchSize = 500 // about 700 KB: under the broker's 1 MB message limit
	p, err := kafka.NewProducer(Conn(t), cfg, topic)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Produce sends n messages made by next, in chunks.
func Produce(t testing.TB, p *kafka.Producer, n int, next func() (key, value []byte)) {
	t.Helper()
	ctx := context.Background()
	const chunk = 5000
	msgs := make([]kafka.Message, 0, chunk)
	for i := 0; i < n; i++ {
		k, v := next()
		msgs = append(msgs, kafka.Message{Key: k, Value: v})
		if len(msgs) == chunk || i == n-1 {
			require.NoError(t, p.Write(ctx, msgs...))
			msgs = msgs[:0]
		}
	}
}

// DeadLetters reads every record of the one-partition dead-letter topic.
func DeadLetters(t testing.TB, topic string) []event.DLQ {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kafka.PartitionOffsets(ctx, Conn(t), topic)
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
		require.NoError(t, event.DecodeDLQ(m.Value, &rec))
		out = append(out, rec)
		if m.Offset+1 >= end {
			return out
		}
	}
}
