// Package kafka holds what every Vigie service does with Kafka, on segmentio/kafka-go:
// create its topics explicitly, consume at-least-once (fetch, handle, then commit only what
// the handler finished), and produce synchronously with acknowledgements from all in-sync
// replicas.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// TopicSpec is a topic to create: its partitions, replication and topic-level configuration
// (e.g. "retention.ms", "min.insync.replicas").
type TopicSpec struct {
	Name              string            `yaml:"name"`
	Partitions        int               `yaml:"partitions"`
	ReplicationFactor int               `yaml:"replication_factor"`
	Config            map[string]string `yaml:"config"`
}

// EnsureTopics creates the topics that do not exist yet and waits until every partition of
// every topic has a leader, so that producing right after returns no "unknown topic" error.
// An existing topic is left as it is, even if its settings differ.
func EnsureTopics(ctx context.Context, brokers []string, topics ...TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("ensure topics: no brokers")
	}
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafkago.CreateTopicsRequest{}
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		if t.Partitions <= 0 || t.ReplicationFactor <= 0 {
			return fmt.Errorf("ensure topics: topic %q needs positive partitions and replication_factor", t.Name)
		}
		tc := kafkago.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		for k, v := range t.Config {
			tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, tc)
		names = append(names, t.Name)
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		resp, err := client.CreateTopics(ctx, req)
		if err != nil {
			return struct{}{}, fmt.Errorf("create topics: %w", err)
		}
		for name, err := range resp.Errors {
			if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
				return struct{}{}, backoff.Permanent(fmt.Errorf("create topic %s: %w", name, err))
			}
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(30*time.Second))
	if err != nil {
		return err
	}
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, topicsReady(ctx, client, names)
	}, backoff.WithBackOff(&backoff.ConstantBackOff{Interval: 50 * time.Millisecond}), backoff.WithMaxElapsedTime(30*time.Second))
	return err
}

func topicsReady(ctx context.Context, client *kafkago.Client, names []string) error {
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(meta.Topics) != len(names) {
		return fmt.Errorf("metadata: %d of %d topics visible", len(meta.Topics), len(names))
	}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader yet", t.Name, p.ID)
			}
		}
	}
	return nil
}

// WaitForTopic returns once topic exists with a leader for every partition, logging while
// it waits, or ctx's error. Consumers wait for the topic their producer creates.
func WaitForTopic(ctx context.Context, brokers []string, topic string, logger *zap.Logger) error {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	logged := false
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := topicsReady(ctx, client, []string{topic})
		if err != nil && !logged {
			logger.Info("waiting for topic", zap.String("topic", topic), zap.Error(err))
			logged = true
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 1.5, MaxInterval: 2 * time.Second,
	}), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("wait for topic %s: %w", topic, err)
	}
	return nil
}

// Ping checks that at least one broker answers a metadata request; services use it for
// readiness.
func Ping(ctx context.Context, brokers []string) error {
	var lastErr error
	for _, b := range brokers {
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", b)
		if err != nil {
			lastErr = err
			continue
		}
		_ = conn.Close()
		client := &kafkago.Client{Addr: kafkago.TCP(b), Timeout: 2 * time.Second}
		if _, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}}); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	return fmt.Errorf("no broker of %v answers: %w", brokers, lastErr)
}

// PartitionOffsets returns the end offset (the offset the next message will get) of each
// partition of topic; tests and lag metrics use it. Right after a topic is created a broker
// may briefly answer "not leader": such answers are retried for a few seconds.
func PartitionOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	return backoff.Retry(ctx, func() (map[int]int64, error) {
		return partitionOffsets(ctx, client, topic)
	}, backoff.WithBackOff(&backoff.ConstantBackOff{Interval: 100 * time.Millisecond}), backoff.WithMaxElapsedTime(10*time.Second))
}

func partitionOffsets(ctx context.Context, client *kafkago.Client, topic string) (map[int]int64, error) {
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s not found", topic)
	}
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, p := range meta.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafkago.LastOffsetOf(p.ID))
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets %s/%d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out, nil
}
