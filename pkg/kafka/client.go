package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/retry"
)

// settle is the policy for what a cluster does in seconds: a new topic's leaders, a metadata
// refresh. It polls quickly and gives up after ten seconds.
var settle = retry.Policy{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond, Multiplier: 1.5, Jitter: 0.2, MaxElapsed: 10 * time.Second}

// client is a kafka-go admin client on the connection's transport; close releases the
// transport's connections.
type client struct {
	*kafkago.Client
	transport *kafkago.Transport
}

func newClient(conn Config, timeout time.Duration, brokers ...string) (*client, error) {
	if len(brokers) == 0 {
		brokers = conn.Brokers
	}
	if len(brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	t, err := conn.Transport()
	if err != nil {
		return nil, err
	}
	return &client{
		Client:    &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: timeout, Transport: t},
		transport: t,
	}, nil
}

func (c *client) close() { c.transport.CloseIdleConnections() }

// Ping checks that at least one broker answers a metadata request; services use it as a
// readiness check.
func Ping(ctx context.Context, c Config) error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka ping: no brokers")
	}
	var lastErr error
	for _, b := range c.Brokers {
		cl, err := newClient(c, 5*time.Second, b)
		if err != nil {
			return fmt.Errorf("kafka ping: %w", err)
		}
		_, err = cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}})
		cl.close()
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("no broker of %v answers: %w", c.Brokers, lastErr)
}

// PartitionOffsets returns the end offset (the offset the next message will get) of each
// partition of topic; tests and lag metrics use it. Right after a topic is created a broker
// may briefly answer "not leader": such answers are retried for up to ten seconds.
func PartitionOffsets(ctx context.Context, c Config, topic string) (map[int]int64, error) {
	cl, err := newClient(c, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	var out map[int]int64
	err = retry.Do(ctx, settle, func(ctx context.Context) error {
		var err error
		out, err = partitionOffsets(ctx, c, cl.Client, topic)
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func partitionOffsets(ctx context.Context, c Config, cl *kafkago.Client, topic string) (map[int]int64, error) {
	meta, err := metadata(ctx, c, []string{topic})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s not found", topic)
	}
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, p := range meta.Topics[0].Partitions {
		req.Topics[topic] = append(req.Topics[topic], kafkago.LastOffsetOf(p.ID))
	}
	resp, err := cl.ListOffsets(ctx, req)
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

// WaitForTopic returns once topic exists with a leader for every partition, logging once
// while it waits, or with ctx's error. Consumers wait for the topics `vigiectl topics apply`
// creates; a topic that never comes is visible in their readiness, never an exit.
func WaitForTopic(ctx context.Context, conn Config, topic string, logger *zap.Logger) error {
	if logger == nil {
		logger = zap.NewNop()
	}
	policy := retry.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 1.5, Jitter: 0.2}
	err := retry.Do(ctx, policy, func(ctx context.Context) error {
		return topicsReady(ctx, conn, map[string]int{topic: 0})
	}, func(err error, attempt int, _ time.Duration) {
		if attempt == 1 {
			logger.Info("waiting for topic", zap.String("topic", topic), zap.Error(err))
		}
	})
	if err != nil {
		return fmt.Errorf("wait for topic %s: %w", topic, err)
	}
	return nil
}

// metadata asks a broker for the cluster's metadata about topics. kafka-go's Transport
// answers metadata requests from a cache it refreshes every few seconds; a throwaway
// transport makes the answer current, which an admin tool and a consumer waiting for its
// topic both need (a topic created a second ago, partitions just added).
func metadata(ctx context.Context, conn Config, topics []string) (*kafkago.MetadataResponse, error) {
	cl, err := newClient(conn, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return meta, nil
}

// topicsReady returns nil once every topic of want exists with at least the partition count
// it maps to, and each of its partitions has a leader.
func topicsReady(ctx context.Context, conn Config, want map[string]int) error {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	meta, err := metadata(ctx, conn, names)
	if err != nil {
		return err
	}
	if len(meta.Topics) != len(names) {
		return fmt.Errorf("metadata: %d of %d topics visible", len(meta.Topics), len(names))
	}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) == 0 || len(t.Partitions) < want[t.Name] {
			return fmt.Errorf("topic %s has %d of %d partitions yet", t.Name, len(t.Partitions), want[t.Name])
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader yet", t.Name, p.ID)
			}
		}
	}
	return nil
}
