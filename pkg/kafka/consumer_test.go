package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
)

// seen records which message values a group's members handled, and how often.
type seen struct {
	mu     sync.Mutex
	counts map[string]int
	byName map[string]int
}

func newSeen() *seen { return &seen{counts: map[string]int{}, byName: map[string]int{}} }

func (s *seen) handler(name string, after func(total int)) kafka.Handler {
	return func(_ context.Context, msgs []kafka.Message) error {
		s.mu.Lock()
		for _, m := range msgs {
			s.counts[string(m.Value)]++
		}
		s.byName[name] += len(msgs)
		total := len(s.counts)
		s.mu.Unlock()
		if after != nil {
			after(total)
		}
		return nil
	}
}

func (s *seen) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

func (s *seen) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 0
	for _, n := range s.counts {
		d += n - 1
	}
	return d
}

func (s *seen) handledBy(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

func setup(t *testing.T, partitions int) (brokers []string, topic, group string) {
	t.Helper()
	brokers = testenv.KafkaBrokers(t)
	topic = testenv.Name(t, "test")
	group = topic + "_group"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 1}))
	return brokers, topic, group
}

// produce writes values "prefix-from" .. "prefix-(to-1)" with keys spreading them over partitions.
func produce(t *testing.T, brokers []string, topic string, from, to int) {
	t.Helper()
	cfg := kafka.DefaultProducerConfig()
	cfg.Brokers = brokers
	w, err := kafka.NewWriter(cfg, topic)
	require.NoError(t, err)
	defer w.Close()
	msgs := make([]kafkago.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, kafkago.Message{Key: []byte("key-" + strconv.Itoa(i%97)), Value: []byte("msg-" + strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, w.WriteMessages(ctx, msgs...))
}

func consumerConfig(brokers []string, topic, group string) kafka.ConsumerConfig {
	cfg := kafka.DefaultConsumerConfig(topic, group)
	cfg.Brokers = brokers
	cfg.BatchSize = 50
	cfg.BatchWait = 20 * time.Millisecond
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	return cfg
}

// start runs a consumer in the background. stop asks it to stop and returns Run's result;
// done is closed when Run returned, and err then holds its result.
func start(t *testing.T, cfg kafka.ConsumerConfig, h kafka.Handler) (stop func() error, done <-chan struct{}, err *error) {
	t.Helper()
	c, nerr := kafka.NewConsumer(cfg, h, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, nerr)
	finished := make(chan struct{})
	var result error
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(finished)
		result = c.Run(ctx)
	}()
	stop = func() error {
		require.NoError(t, c.Stop(context.Background()))
		select {
		case <-finished:
			cancel()
			return result
		case <-time.After(30 * time.Second):
			cancel()
			return errors.New("consumer did not stop within 30 s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop, finished, &result
}

func TestRestartResumesAtCommittedOffset(t *testing.T) {
	t.Parallel()
	brokers, topic, group := setup(t, 3)
	const n = 3000
	produce(t, brokers, topic, 0, n)

	s := newSeen()
	reached := make(chan struct{})
	var once sync.Once
	stop, _, _ := start(t, consumerConfig(brokers, topic, group), s.handler("first", func(total int) {
		if total >= n/3 {
			once.Do(func() { close(reached) })
		}
	}))
	<-reached
	require.NoError(t, stop())
	firstRun := s.distinct()
	require.Less(t, firstRun, n, "the first consumer must stop mid-stream for this test to mean anything")

	stop2, _, _ := start(t, consumerConfig(brokers, topic, group), s.handler("second", nil))
	require.Eventually(t, func() bool { return s.distinct() == n }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, stop2())
	require.Zero(t, s.duplicates(), "a gracefully stopped consumer commits what it handled")
	require.Equal(t, n-firstRun, s.handledBy("second"), "the second consumer starts at the committed offset")
}

func TestGroupSplitsPartitionsAndRebalanceLosesNothing(t *testing.T) {
	t.Parallel()
	brokers, topic, group := setup(t, 4)
	s := newSeen()
	cfg := consumerConfig(brokers, topic, group)

	stopA, _, _ := start(t, cfg, s.handler("a", nil))
	produce(t, brokers, topic, 0, 2000)
	require.Eventually(t, func() bool { return s.distinct() == 2000 }, 60*time.Second, 20*time.Millisecond)

	// A second member joins: the group rebalances and both members get partitions.
	stopB, _, _ := start(t, cfg, s.handler("b", nil))
	require.Eventually(t, func() bool {
		produce(t, brokers, topic, s.distinct(), s.distinct()+200)
		return s.handledBy("b") > 0 && s.distinct() >= 2200
	}, 60*time.Second, 500*time.Millisecond, "the second member must receive partitions")
	aBefore := s.handledBy("a")

	// Produce while A leaves: everything must still arrive, through B.
	total := s.distinct()
	produce(t, brokers, topic, total, total+1000)
	require.NoError(t, stopA())
	produce(t, brokers, topic, total+1000, total+2000)
	total += 2000
	require.Eventually(t, func() bool { return s.distinct() == total }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, stopB())
	require.Positive(t, aBefore)
	t.Logf("handled: a=%d b=%d distinct=%d duplicates=%d", s.handledBy("a"), s.handledBy("b"), s.distinct(), s.duplicates())
}

func TestHandlerErrorDoesNotCommit(t *testing.T) {
	t.Parallel()
	brokers, topic, group := setup(t, 1)
	produce(t, brokers, topic, 0, 100)

	boom := errors.New("clickhouse down")
	var firstBatch []string
	_, done, runErr := start(t, consumerConfig(brokers, topic, group), func(_ context.Context, msgs []kafka.Message) error {
		for _, m := range msgs {
			firstBatch = append(firstBatch, string(m.Value))
		}
		return boom
	})
	select {
	case <-done:
		require.ErrorIs(t, *runErr, boom)
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not return the handler's error")
	}
	require.Equal(t, "msg-0", firstBatch[0])

	// A new member of the same group starts from the beginning: nothing was committed.
	s := newSeen()
	stop, _, _ := start(t, consumerConfig(brokers, topic, group), s.handler("retry", nil))
	require.Eventually(t, func() bool { return s.distinct() == 100 }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, 100, s.handledBy("retry"))
}

func TestEnsureTopicsIsIdempotentAndValidates(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	name := testenv.Name(t, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := kafka.TopicSpec{Name: name, Partitions: 2, ReplicationFactor: 1, Config: map[string]string{"retention.ms": "3600000"}}
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, spec))
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, spec), "second call is harmless")
	offsets, err := kafka.PartitionOffsets(ctx, brokers, name)
	require.NoError(t, err)
	require.Equal(t, map[int]int64{0: 0, 1: 0}, offsets)

	err = kafka.EnsureTopics(ctx, brokers, kafka.TopicSpec{Name: name + "_bad", Partitions: 0, ReplicationFactor: 1})
	require.ErrorContains(t, err, "positive partitions")
	err = kafka.EnsureTopics(ctx, brokers, kafka.TopicSpec{Name: name + "_rf", Partitions: 1, ReplicationFactor: 3})
	require.Error(t, err, "replication factor above the broker count is refused")
	require.NoError(t, kafka.Ping(ctx, brokers))
	require.Error(t, kafka.Ping(ctx, []string{"127.0.0.1:1"}))
}

func TestConsumerStartedBeforeItsTopicExists(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Name(t, "test")
	s := newSeen()
	stop, _, _ := start(t, consumerConfig(brokers, topic, topic+"_group"), s.handler("early", nil))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.TopicSpec{Name: topic, Partitions: 2, ReplicationFactor: 1}))
	produce(t, brokers, topic, 0, 100)
	require.Eventually(t, func() bool { return s.distinct() == 100 }, 60*time.Second, 50*time.Millisecond,
		"a consumer that joined before the topic existed must get its partitions when it appears")
	require.NoError(t, stop())
}
