package kafka_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/pkg/testenv"
)

// The consumer's integration tests run as parallel subtests of one sequential test, so that
// goleak sees only their goroutines once all of them ended.
func TestConsumer(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	t.Run("ConfigValidate", testConsumerConfigValidate)
	t.Run("RestartResumesAfterLastCommittedBatch", testRestartResumes)
	t.Run("HandlerErrorIsRetriedUntilItSucceeds", testHandlerErrorRetried)
	t.Run("TwoMembersRebalanceLosingNothing", testRebalance)
	t.Run("OnAssignChoosesTheStartOffset", testOnAssignStartOffset)
	t.Run("StopFinishesTheBatchInHand", testStopDrains)
	t.Run("StopContextExpiryAbortsTheHandler", testStopAborts)
	t.Run("ContextCancelReturnsItsError", testCancel)
	t.Run("WaitsForATopicCreatedAfterRun", testWaitsForTopic)
	t.Run("WaitsForABrokerDownAtStart", testBrokerDownAtStart)
	t.Run("LagPerPartitionAndGroupsShareARegistry", testLag)
	t.Run("RecreatedTopicIsReadFromItsStart", testRecreatedTopic)
}

func testConsumerConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*kafka.ConsumerConfig)
		want string // "" = valid
	}{
		{"default", func(*kafka.ConsumerConfig) {}, ""},
		{"no group", func(c *kafka.ConsumerConfig) { c.GroupID = "" }, "consumer.group_id"},
		{"batch size", func(c *kafka.ConsumerConfig) { c.BatchSize = 0 }, "consumer.batch_size"},
		{"batch wait", func(c *kafka.ConsumerConfig) { c.BatchWait = 0 }, "consumer.batch_wait"},
		{"max bytes", func(c *kafka.ConsumerConfig) { c.MaxBytes = -1 }, "consumer.max_bytes"},
		{"queue", func(c *kafka.ConsumerConfig) { c.QueueCapacity = 0 }, "consumer.queue_capacity"},
		{"heartbeat", func(c *kafka.ConsumerConfig) { c.HeartbeatInterval = 0 }, "consumer.heartbeat_interval"},
		{"session", func(c *kafka.ConsumerConfig) { c.SessionTimeout = c.HeartbeatInterval }, "consumer.session_timeout"},
		{"retry", func(c *kafka.ConsumerConfig) { c.Retry.Jitter = 3 }, "consumer.retry.jitter"},
		{"zero retry is default", func(c *kafka.ConsumerConfig) { c.Retry = retry.Policy{} }, ""},
	} {
		cfg := kafka.DefaultConsumerConfig("vigie-test")
		tc.edit(&cfg)
		err := cfg.Validate("consumer")
		if tc.want == "" {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorContains(t, err, tc.want, tc.name)
		}
	}
	conn := kafka.DefaultConfig()
	h := func(context.Context, []kafka.Message) error { return nil }
	_, err := kafka.NewConsumer(conn, kafka.DefaultConsumerConfig("g"), "", h, kafka.Hooks{}, zaptest.NewLogger(t), nil)
	require.ErrorContains(t, err, "no topic")
	_, err = kafka.NewConsumer(kafka.Config{}, kafka.DefaultConsumerConfig("g"), "t", h, kafka.Hooks{}, zaptest.NewLogger(t), nil)
	require.ErrorContains(t, err, "kafka.brokers")
}

// seen records which message values the members of a group handled, and how often.
type seen struct {
	mu     sync.Mutex
	counts map[string]int
	byName map[string]int
}

func newSeen() *seen { return &seen{counts: map[string]int{}, byName: map[string]int{}} }

func (s *seen) add(name string, msgs []kafka.Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.counts[string(m.Value)]++
	}
	s.byName[name] += len(msgs)
	return len(s.counts)
}

func (s *seen) handler(name string) kafka.Handler {
	return func(_ context.Context, msgs []kafka.Message) error {
		s.add(name, msgs)
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

func (s *seen) has(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[value] > 0
}

// newTopic creates a topic of its own for the test.
func newTopic(t *testing.T, conn kafka.Config, partitions int) string {
	t.Helper()
	topic := testenv.Name(t, "test")
	createTopic(t, conn, topic, partitions)
	return topic
}

func createTopic(t *testing.T, conn kafka.Config, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: partitions, ReplicationFactor: 1}}, zaptest.NewLogger(t))
	require.NoError(t, err)
}

func connConfig(t *testing.T) kafka.Config {
	return kafka.Config{Brokers: testenv.KafkaBrokers(t)}
}

// produce writes values "msg-from" .. "msg-(to-1)" with keys spreading them over partitions.
func produce(t *testing.T, conn kafka.Config, topic string, from, to int) {
	t.Helper()
	p, err := kafka.NewProducer(conn, kafka.DefaultProducerConfig(), topic)
	require.NoError(t, err)
	defer p.Close()
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("key-" + strconv.Itoa(i%97)), Value: []byte("msg-" + strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.Write(ctx, msgs...))
}

func consumerConfig(group string) kafka.ConsumerConfig {
	cfg := kafka.DefaultConsumerConfig(group)
	cfg.BatchSize = 50
	cfg.BatchWait = 20 * time.Millisecond
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	cfg.Retry = retry.Policy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	return cfg
}

// running is a consumer running in the background.
type running struct {
	t    *testing.T
	c    *kafka.Consumer
	done chan struct{}
	err  error
}

// start runs a consumer until the test ends (or stop).
func start(t *testing.T, conn kafka.Config, cfg kafka.ConsumerConfig, topic string, h kafka.Handler, hooks kafka.Hooks, reg prometheus.Registerer, setup ...func(*kafka.Consumer)) *running {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c, err := kafka.NewConsumer(conn, cfg, topic, h, hooks, zaptest.NewLogger(t), reg)
	require.NoError(t, err)
	for _, f := range setup {
		f(c)
	}
	r := &running{t: t, c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = c.Run(context.Background())
	}()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// stop stops the consumer and returns Run's result.
func (r *running) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.c.Stop(ctx); err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return errors.New("consumer did not stop within 30 s")
	}
}

func (r *running) requireRunning() {
	r.t.Helper()
	select {
	case <-r.done:
		r.t.Fatalf("Run returned: %v", r.err)
	default:
	}
}

// committed returns the group's committed offset of each partition, as a new member
// sees them in OnAssign.
func committed(t *testing.T, conn kafka.Config, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	var mu sync.Mutex
	got := map[int]int64{}
	r := start(t, conn, consumerConfig(group), topic, func(context.Context, []kafka.Message) error {
		return errors.New("this member only looks")
	}, kafka.Hooks{OnAssign: func(_ context.Context, a kafka.Assignment) (int64, error) {
		mu.Lock()
		got[a.Partition] = a.Committed
		mu.Unlock()
		return a.Committed, nil
	}}, nil)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == partitions
	}, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, r.stop())
	return got
}

func testRestartResumes(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 3)
	group := topic + "_group"
	const n = 3000
	produce(t, conn, topic, 0, n)

	s := newSeen()
	reached := make(chan struct{})
	var once sync.Once
	first := start(t, conn, consumerConfig(group), topic, func(_ context.Context, msgs []kafka.Message) error {
		if s.add("first", msgs) >= n/3 {
			once.Do(func() { close(reached) })
		}
		return nil
	}, kafka.Hooks{}, nil)
	<-reached
	require.NoError(t, first.stop())
	firstRun := s.distinct()
	require.Less(t, firstRun, n, "the first consumer must stop mid-stream for this test to mean anything")

	second := start(t, conn, consumerConfig(group), topic, s.handler("second"), kafka.Hooks{}, nil)
	require.Eventually(t, func() bool { return s.distinct() == n }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, second.stop())
	require.Zero(t, s.duplicates(), "a stopped consumer committed every batch it handled, and nothing more")
	require.Equal(t, n-firstRun, s.handledBy("second"), "the second consumer resumes after the last committed batch")
}

func testHandlerErrorRetried(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 1)
	group := topic + "_group"
	produce(t, conn, topic, 0, 100)

	s := newSeen()
	var calls atomic.Int32
	var firstOffsets sync.Map // offset of each call's first message
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	r := start(t, conn, consumerConfig(group), topic, func(ctx context.Context, msgs []kafka.Message) error {
		n := calls.Add(1)
		firstOffsets.Store(n, msgs[0].Offset)
		select {
		case <-release:
			s.add("h", msgs)
			return nil
		default:
			return errors.New("clickhouse down")
		}
	}, kafka.Hooks{}, reg, func(c *kafka.Consumer) { kafka.SetTestIntervals(c, 0, time.Hour) })

	require.Eventually(t, func() bool { return calls.Load() >= 5 }, 60*time.Second, 10*time.Millisecond)
	r.requireRunning()
	err := r.c.Ready(context.Background())
	require.ErrorContains(t, err, "partition 0")
	require.ErrorContains(t, err, "clickhouse down")
	firstOffsets.Range(func(_, off any) bool {
		require.Equal(t, int64(0), off, "the same batch is retried")
		return true
	})
	retries, ok := value(t, reg, "vigie_kafka_consumer_retries_total", map[string]string{"group": group, "topic": topic})
	require.True(t, ok)
	require.Positive(t, retries)

	close(release)
	require.Eventually(t, func() bool { return s.distinct() == 100 }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return r.c.Ready(context.Background()) == nil }, 10*time.Second, 10*time.Millisecond)
	r.requireRunning()
	require.NoError(t, r.stop())
	require.Equal(t, map[int]int64{0: 100}, committed(t, conn, group, topic, 1))
}

// value reads one series of reg; ok is false when it does not exist.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// hookLog counts a member's assignments and revocations.
type hookLog struct {
	mu       sync.Mutex
	assigned map[int]int
	revoked  map[int]int
	owned    map[int]bool
	overlap  bool // OnAssign for a partition already owned
}

func newHookLog() *hookLog {
	return &hookLog{assigned: map[int]int{}, revoked: map[int]int{}, owned: map[int]bool{}}
}

func (l *hookLog) hooks() kafka.Hooks {
	return kafka.Hooks{
		OnAssign: func(_ context.Context, a kafka.Assignment) (int64, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.overlap = l.overlap || l.owned[a.Partition]
			l.owned[a.Partition] = true
			l.assigned[a.Partition]++
			return a.Committed, nil
		},
		OnRevoke: func(a kafka.Assignment) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.owned[a.Partition] = false
			l.revoked[a.Partition]++
		},
	}
}

func (l *hookLog) counts() (assigned, revoked int, owned []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, n := range l.assigned {
		assigned += n
		revoked += l.revoked[p]
		if l.owned[p] {
			owned = append(owned, p)
		}
	}
	return assigned, revoked, owned
}

func testRebalance(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 4)
	group := topic + "_group"
	s := newSeen()
	cfg := consumerConfig(group)
	la, lb := newHookLog(), newHookLog()

	a := start(t, conn, cfg, topic, s.handler("a"), la.hooks(), nil)
	produce(t, conn, topic, 0, 2000)
	require.Eventually(t, func() bool { return s.distinct() == 2000 }, 60*time.Second, 10*time.Millisecond)
	_, _, owned := la.counts()
	require.Len(t, owned, 4, "a single member owns every partition")

	// A second member joins: the group rebalances, both get partitions.
	b := start(t, conn, cfg, topic, s.handler("b"), lb.hooks(), nil)
	total := 2000
	require.Eventually(t, func() bool {
		produce(t, conn, topic, total, total+100)
		total += 100
		return s.handledBy("b") > 0
	}, 60*time.Second, 200*time.Millisecond, "the second member must receive partitions")
	require.Eventually(t, func() bool { return s.distinct() == total }, 60*time.Second, 10*time.Millisecond)
	assignedA, revokedA, _ := la.counts()
	require.Positive(t, revokedA, "the rebalance revoked partitions of the first member")
	require.Greater(t, assignedA, 4)

	// Produce while A leaves: everything arrives, through B.
	produce(t, conn, topic, total, total+1000)
	require.NoError(t, a.stop())
	produce(t, conn, topic, total+1000, total+2000)
	total += 2000
	require.Eventually(t, func() bool { return s.distinct() == total }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		_, _, owned := lb.counts()
		return len(owned) == 4
	}, 60*time.Second, 10*time.Millisecond, "the remaining member owns every partition")
	require.NoError(t, b.stop())

	for name, l := range map[string]*hookLog{"a": la, "b": lb} {
		assigned, revoked, owned := l.counts()
		require.Equal(t, assigned, revoked, "member %s: every OnAssign has its OnRevoke", name)
		require.Empty(t, owned, name)
		require.False(t, l.overlap, "member %s: a partition is revoked before it is assigned again", name)
	}
	t.Logf("handled: a=%d b=%d distinct=%d duplicates=%d", s.handledBy("a"), s.handledBy("b"), s.distinct(), s.duplicates())
}

func testOnAssignStartOffset(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 1)
	group := topic + "_group"
	produce(t, conn, topic, 0, 100)

	// A service's own record says 50 messages are handled: start there. Reading that
	// record fails twice first: OnAssign is retried.
	s := newSeen()
	var got []kafka.Assignment
	var mu sync.Mutex
	var failures atomic.Int32
	failures.Store(2)
	onAssign := func(start func(a kafka.Assignment) int64) kafka.Hooks {
		return kafka.Hooks{OnAssign: func(_ context.Context, a kafka.Assignment) (int64, error) {
			if failures.Add(-1) >= 0 {
				return 0, errors.New("clickhouse down")
			}
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
			return start(a), nil
		}}
	}
	var firstOffset atomic.Int64
	firstOffset.Store(-1)
	r := start(t, conn, consumerConfig(group), topic, func(_ context.Context, msgs []kafka.Message) error {
		firstOffset.CompareAndSwap(-1, msgs[0].Offset)
		s.add("first", msgs)
		return nil
	}, onAssign(func(kafka.Assignment) int64 { return 50 }), nil)
	require.Eventually(t, func() bool { return s.distinct() == 50 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, r.stop())
	require.Equal(t, int64(50), firstOffset.Load())
	require.False(t, s.has("msg-49"))
	require.Equal(t, []kafka.Assignment{{Topic: topic, Partition: 0, Committed: -1}}, got, "nothing was committed before")

	// Keeping the group's offset: only what comes after it.
	got = nil
	produce(t, conn, topic, 100, 110)
	r = start(t, conn, consumerConfig(group), topic, s.handler("second"), onAssign(func(a kafka.Assignment) int64 { return a.Committed }), nil)
	require.Eventually(t, func() bool { return s.distinct() == 60 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, r.stop())
	require.Equal(t, 10, s.handledBy("second"))
	require.Equal(t, []kafka.Assignment{{Topic: topic, Partition: 0, Committed: 100}}, got)

	// FirstOffset reads the partition again from its start.
	again := newSeen()
	r = start(t, conn, consumerConfig(group), topic, again.handler("again"), onAssign(func(kafka.Assignment) int64 { return kafka.FirstOffset }), nil)
	require.Eventually(t, func() bool { return again.distinct() == 110 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, r.stop())
}

func testStopDrains(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 1)
	group := topic + "_group"
	produce(t, conn, topic, 0, 100)

	inHandler := make(chan []kafka.Message, 1)
	release := make(chan struct{})
	var handled, revokedAfter atomic.Bool
	r := start(t, conn, consumerConfig(group), topic, func(ctx context.Context, msgs []kafka.Message) error {
		select {
		case inHandler <- msgs:
		default:
			return errors.New("only one batch in this test")
		}
		<-release
		handled.Store(true)
		return ctx.Err()
	}, kafka.Hooks{OnRevoke: func(kafka.Assignment) { revokedAfter.Store(handled.Load()) }}, nil)
	batch := <-inHandler
	last := batch[len(batch)-1].Offset

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a batch in hand", err)
	case <-time.After(200 * time.Millisecond): // Stop must still be waiting (not a sleep to sync on)
	}
	close(release)
	require.NoError(t, <-stopped)
	require.True(t, revokedAfter.Load(), "OnRevoke comes after the batch in hand was handled")
	require.Equal(t, map[int]int64{0: last + 1}, committed(t, conn, group, topic, 1), "the batch in hand was committed")
}

func testStopAborts(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 1)
	group := topic + "_group"
	produce(t, conn, topic, 0, 10)

	inHandler := make(chan struct{})
	var once sync.Once
	c, err := kafka.NewConsumer(conn, consumerConfig(group), topic, func(ctx context.Context, _ []kafka.Message) error {
		once.Do(func() { close(inHandler) })
		<-ctx.Done() // a handler stuck until its context ends
		return ctx.Err()
	}, kafka.Hooks{}, zaptest.NewLogger(t), nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	<-inHandler

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Stop(ctx), context.DeadlineExceeded)
	select {
	case err := <-done:
		require.NoError(t, err, "Run returns nil after Stop, even an aborted one")
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after Stop's context expired")
	}
	require.Equal(t, map[int]int64{0: -1}, committed(t, conn, group, topic, 1), "nothing was committed")
}

func testCancel(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 1)
	produce(t, conn, topic, 0, 10)
	s := newSeen()
	c, err := kafka.NewConsumer(conn, consumerConfig(topic+"_group"), topic, s.handler("h"), kafka.Hooks{}, zaptest.NewLogger(t), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Eventually(t, func() bool { return s.distinct() == 10 }, 60*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.ErrorContains(t, c.Run(context.Background()), "twice")
	require.NoError(t, c.Stop(context.Background()), "Stop after Run returned")
}

func testWaitsForTopic(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := testenv.Name(t, "test")
	s := newSeen()
	r := start(t, conn, consumerConfig(topic+"_group"), topic, s.handler("early"), kafka.Hooks{}, nil)
	require.Eventually(t, func() bool {
		err := r.c.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "not yet a member") && strings.Contains(err.Error(), "waiting for the topic")
	}, 10*time.Second, 10*time.Millisecond)

	createTopic(t, conn, topic, 2)
	produce(t, conn, topic, 0, 100)
	require.Eventually(t, func() bool { return s.distinct() == 100 }, 60*time.Second, 10*time.Millisecond,
		"a consumer started before its topic existed must get its partitions when it appears")
	require.NoError(t, r.c.Ready(context.Background()))
	require.NoError(t, r.stop())
}

// proxy listens on addr: while down it closes every connection it accepts (a broker that
// is down), once up it forwards them to target.
type proxy struct {
	addr, target string
	ln           net.Listener
	up           atomic.Bool
	refused      atomic.Int32
	wg           sync.WaitGroup
	mu           sync.Mutex
	conns        []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{addr: ln.Addr().String(), target: target, ln: ln}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.up.Load() {
			p.refused.Add(1)
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(out, in); out.Close() })
		p.wg.Go(func() { _, _ = io.Copy(in, out); in.Close() })
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func testBrokerDownAtStart(t *testing.T) {
	t.Parallel()
	real := connConfig(t)
	topic := newTopic(t, real, 1)
	produce(t, real, topic, 0, 20)

	// The consumer's only bootstrap address is down when it starts; once up, the broker's
	// metadata sends it on to the real address.
	px := newProxy(t, real.Brokers[0])
	down := kafka.Config{Brokers: []string{px.addr}}
	s := newSeen()
	r := start(t, down, consumerConfig(topic+"_group"), topic, s.handler("late"), kafka.Hooks{}, nil)
	require.Eventually(t, func() bool { return px.refused.Load() >= 3 }, 30*time.Second, 10*time.Millisecond,
		"the consumer keeps trying the broker")
	require.ErrorContains(t, r.c.Ready(context.Background()), "not yet a member")
	r.requireRunning()

	px.up.Store(true)
	require.Eventually(t, func() bool { return s.distinct() == 20 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, r.c.Ready(context.Background()))
	require.NoError(t, r.stop())
}

func testLag(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 2)
	group := topic + "_group"
	produce(t, conn, topic, 0, 400)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kafka.PartitionOffsets(ctx, conn, topic)
	require.NoError(t, err)
	require.Positive(t, ends[0])
	require.Positive(t, ends[1])

	// Partition 0 is handled, partition 1's handler keeps failing: its lag shows all of it.
	reg := prometheus.NewRegistry()
	var ok0 atomic.Int64
	r := start(t, conn, consumerConfig(group), topic, func(_ context.Context, msgs []kafka.Message) error {
		if msgs[0].Partition == 1 {
			return errors.New("partition 1 is broken")
		}
		ok0.Add(int64(len(msgs)))
		return nil
	}, kafka.Hooks{}, reg, func(c *kafka.Consumer) { kafka.SetTestIntervals(c, 0, 50*time.Millisecond) })

	// A consumer of another group on the same registry reuses the same metrics.
	other := newSeen()
	r2 := start(t, conn, consumerConfig(group+"_other"), topic, other.handler("other"), kafka.Hooks{}, reg)

	lag := func(g string, partition int) (float64, bool) {
		return value(t, reg, "vigie_kafka_consumer_lag_messages", map[string]string{"group": g, "topic": topic, "partition": strconv.Itoa(partition)})
	}
	require.Eventually(t, func() bool {
		l0, ok := lag(group, 0)
		l1, ok1 := lag(group, 1)
		return ok && ok1 && l0 == 0 && l1 == float64(ends[1])
	}, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, ends[0], ok0.Load())
	err = r.c.Ready(context.Background())
	require.ErrorContains(t, err, "partition 1")
	require.ErrorContains(t, err, "partition 1 is broken")

	require.Eventually(t, func() bool { return other.distinct() == 400 }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		l0, ok0 := lag(group+"_other", 0)
		l1, ok1 := lag(group+"_other", 1)
		return ok0 && ok1 && l0 == 0 && l1 == 0
	}, 60*time.Second, 10*time.Millisecond)
	for g, want := range map[string]float64{group: float64(ends[0]), group + "_other": 400} {
		v, ok := value(t, reg, "vigie_kafka_consumer_messages_total", map[string]string{"group": g, "topic": topic})
		require.True(t, ok, g)
		require.Equal(t, want, v, g)
		v, ok = value(t, reg, "vigie_kafka_consumer_generations_total", map[string]string{"group": g, "topic": topic})
		require.True(t, ok, g)
		require.Positive(t, v, g)
	}

	// Stopping gives the broken partition's batch up (not committed) and deletes the
	// member's lag series.
	require.NoError(t, r.stop())
	_, ok := lag(group, 1)
	require.False(t, ok, "a revoked partition's lag is deleted")
	require.NoError(t, r2.stop())
	require.Equal(t, map[int]int64{0: ends[0], 1: -1}, committed(t, conn, group, topic, 2))

	// Nothing else is left registered under an unexpected name.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		require.True(t, strings.HasPrefix(mf.GetName(), "vigie_kafka_consumer_"), mf.GetName())
	}
}

// testRecreatedTopic: a topic deleted and made again. Kafka drops the group's offsets with
// the old topic, but a member still running through the deletion commits its old position
// into the new one (simulated here by a commit outside any generation): the consumer reads
// the new topic from its start instead of waiting until it grows past that offset.
func testRecreatedTopic(t *testing.T) {
	t.Parallel()
	conn := connConfig(t)
	topic := newTopic(t, conn, 2)
	group := topic + "_group"
	const old, fresh = 400, 100
	produce(t, conn, topic, 0, old)
	s := newSeen()
	first := start(t, conn, consumerConfig(group), topic, s.handler("old"), kafka.Hooks{}, nil)
	require.Eventually(t, func() bool { return s.distinct() == old }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, first.stop())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Transport: tr}
	resp, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	require.NoError(t, err)
	require.NoError(t, resp.Errors[topic])
	require.Eventually(t, func() bool {
		_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: 2, ReplicationFactor: 1}}, zaptest.NewLogger(t))
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "recreate the topic")
	produce(t, conn, topic, old, old+fresh)
	stale := map[string][]kafkago.OffsetCommit{topic: {{Partition: 0, Offset: old}, {Partition: 1, Offset: old}}}
	commit, err := cl.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: stale})
	require.NoError(t, err)
	for _, p := range commit.Topics[topic] {
		require.NoError(t, p.Error)
	}

	reg := prometheus.NewRegistry()
	second := start(t, conn, consumerConfig(group), topic, s.handler("new"), kafka.Hooks{}, reg)
	require.Eventually(t, func() bool { return s.distinct() == old+fresh }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, second.stop())
	require.Equal(t, fresh, s.handledBy("new"), "the new topic read from its start, once")
	v, _ := value(t, reg, "vigie_kafka_consumer_offset_beyond_end_total", map[string]string{"group": group})
	require.Positive(t, v)
}
