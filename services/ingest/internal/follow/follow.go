// Package follow keeps ingest's deduplication window (internal/dedup) in the durable log
// rather than in one process's memory: at start it rebuilds the window from what
// detections.raw.v1 holds of the last window (each partition read from the offset of
// now − window, kafka.OffsetsForTime), and then, with dedup_follow, keeps following
// the topic, so that the window also learns what other replicas produce, and what this one
// produced while its request failed (a produce that timed out but was written). Following
// costs every replica the reading of every message (about 2 µs of CPU each); without it the
// consumer stops once the window is rebuilt.
//
// It reads with the one consumer of pkg/kafka, in a consumer group of its own per process
// (every replica must read every partition; the group is never shared, and its commits are
// only bookkeeping: a restart starts again from now − window, not from them). Ready, the
// "dedup_window" readiness check, fails until every partition was read up to the end
// offset it had at start.
package follow

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/ingest/internal/dedup"
)

// Follower rebuilds and follows. Create it with New; Run and Stop are a service part.
type Follower struct {
	conn     kafka.Config
	topic    string
	window   time.Duration
	follow   bool
	seen     *dedup.Window
	logger   *zap.Logger
	now      func() time.Time
	consumer *kafka.Consumer

	stopCtx context.Context
	stop    context.CancelFunc
	started time.Time
	rebuilt atomic.Bool
	done    chan struct{} // closed once rebuilt

	mu      sync.Mutex
	starts  map[int]int64 // where each partition starts: the offset of now − window
	pending map[int]int64 // end offsets at start of the partitions not read up to them yet
	next    map[int]int64 // next offset to read, per partition read so far
	read    int64         // messages read during the rebuild

	learned      *prometheus.CounterVec
	rebuildTime  prometheus.Gauge
	rebuildCount prometheus.Gauge
}

// New builds a follower of topic feeding seen, which remembers window: it rebuilds the
// window, then, if follow, keeps reading. reg takes ingest's own metrics (prefixed), root
// the consumer's vigie_kafka_consumer_* ones.
func New(conn kafka.Config, topic string, window time.Duration, follow bool, seen *dedup.Window, logger *zap.Logger, reg, root prometheus.Registerer) (*Follower, error) {
	f := &Follower{
		conn: conn, topic: topic, window: window, follow: follow, seen: seen,
		logger: logger.Named("dedup_follow").With(zap.String("topic", topic)),
		now:    time.Now,
		done:   make(chan struct{}),
		next:   map[int]int64{},
	}
	m := promauto.With(reg)
	f.learned = m.NewCounterVec(prometheus.CounterOpts{Name: "dedup_learned_total",
		Help: "Messages of detections.raw.v1 read back into the dedup window, by result: new (an identity not known yet), known (already in the window, e.g. produced by this process), expired (older than the window), undecodable."},
		[]string{"result"})
	f.rebuildTime = m.NewGauge(prometheus.GaugeOpts{Name: "dedup_rebuild_seconds", Help: "Time the last start took to rebuild the dedup window from detections.raw.v1 (0 until done)."})
	f.rebuildCount = m.NewGauge(prometheus.GaugeOpts{Name: "dedup_rebuild_messages", Help: "Messages read to rebuild the dedup window at start."})
	f.stopCtx, f.stop = context.WithCancel(context.Background())
	cfg := kafka.DefaultConsumerConfig(groupID())
	// Smaller fetches and queue than a pipeline consumer's: the follower only needs to keep
	// up, and with the defaults (8 MiB per partition fetch, 10,000 messages queued) its
	// buffers were most of ingest's memory (peak RSS 130 MB instead of 80 in the benchmark).
	cfg.MaxBytes, cfg.QueueCapacity = 1<<20, 2000
	c, err := kafka.NewConsumer(conn, cfg, topic, f.handle, kafka.Hooks{OnAssign: f.assign}, logger.Named("dedup_follow"), root)
	if err != nil {
		return nil, err
	}
	f.consumer = c
	return f, nil
}

// groupID is a consumer group of this process alone.
func groupID() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("ingest-dedup-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Run finds where the last window starts in each partition (waiting for Kafka and the
// topic as long as it takes), then consumes until Stop.
func (f *Follower) Run(ctx context.Context) error {
	f.mu.Lock()
	f.started = f.now()
	f.mu.Unlock()
	findCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(f.stopCtx, cancel)()
	from := f.started.Add(-f.window)
	policy := retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	err := retry.Do(findCtx, policy, func(ctx context.Context) error {
		ends, err := kafka.PartitionOffsets(ctx, f.conn, f.topic)
		if err != nil {
			return err
		}
		starts, err := kafka.OffsetsForTime(ctx, f.conn, f.topic, from)
		if err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.starts, f.pending = starts, map[int]int64{}
		for p, end := range ends {
			if end > starts[p] {
				f.pending[p] = end
			}
		}
		return nil
	}, func(err error, attempt int, _ time.Duration) {
		if attempt == 1 {
			f.logger.Warn("finding the dedup window's start, retrying", zap.Error(err))
		}
	})
	if err != nil {
		return ctx.Err() // stopped (nil) or ctx ended
	}
	f.mu.Lock()
	f.checkRebuilt()
	f.mu.Unlock()
	if f.follow {
		return f.consumer.Run(ctx)
	}
	// Rebuild only: consume until rebuilt, then stop consuming but keep running (a part
	// whose Run returns ends the service) until Stop.
	if !f.Rebuilt() {
		go func() {
			select {
			case <-f.done:
				_ = f.consumer.Stop(ctx)
			case <-f.stopCtx.Done():
			case <-ctx.Done():
			}
		}()
		if err := f.consumer.Run(ctx); err != nil {
			return err
		}
	}
	select {
	case <-f.stopCtx.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop stops Run, whether it is still looking for the window's start or consuming.
func (f *Follower) Stop(ctx context.Context) error {
	f.stop()
	return f.consumer.Stop(ctx)
}

// Rebuilt reports whether the window holds what the topic held at start.
func (f *Follower) Rebuilt() bool { return f.rebuilt.Load() }

// Done is closed once the window is rebuilt.
func (f *Follower) Done() <-chan struct{} { return f.done }

// Ready is the dedup_window readiness check.
func (f *Follower) Ready(ctx context.Context) error {
	if !f.rebuilt.Load() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.starts == nil {
			return fmt.Errorf("rebuilding the dedup window from %s: looking for the offsets of the last %s", f.topic, f.window)
		}
		left := int64(0)
		for p, end := range f.pending {
			left += end - max(f.next[p], f.starts[p])
		}
		return fmt.Errorf("rebuilding the dedup window from %s: %d messages read, %d to go in %d partitions", f.topic, f.read, left, len(f.pending))
	}
	if !f.follow {
		return nil
	}
	return f.consumer.Ready(ctx)
}

// assign starts a partition where this process left it, else at the offset of
// now − window found at start, else (a partition added since) at its first offset.
func (f *Follower) assign(_ context.Context, a kafka.Assignment) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off, ok := f.next[a.Partition]; ok {
		return off, nil
	}
	if off, ok := f.starts[a.Partition]; ok {
		return off, nil
	}
	return kafka.FirstOffset, nil
}

// handle learns one batch of one partition.
func (f *Follower) handle(_ context.Context, msgs []kafka.Message) error {
	var newN, known, expired, bad float64
	for i := range msgs {
		m := &msgs[i]
		sensorID, eventID, ok := Identity(m.Value)
		if !ok {
			bad++
			continue
		}
		e := dedup.Entry{Key: f.seen.KeyBytes(sensorID, eventID), Content: f.seen.Content(m.Value)}
		switch {
		case f.seen.Learn(e, m.Time):
			newN++
		case f.now().Sub(m.Time) >= f.window:
			expired++
		default:
			known++
		}
	}
	f.learned.WithLabelValues("new").Add(newN)
	f.learned.WithLabelValues("known").Add(known)
	f.learned.WithLabelValues("expired").Add(expired)
	f.learned.WithLabelValues("undecodable").Add(bad)
	if len(msgs) == 0 {
		return nil
	}
	last := msgs[len(msgs)-1]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next[last.Partition] = last.Offset + 1
	if !f.rebuilt.Load() {
		f.read += int64(len(msgs))
		if end, ok := f.pending[last.Partition]; ok && last.Offset+1 >= end {
			delete(f.pending, last.Partition)
			f.checkRebuilt()
		}
	}
	return nil
}

// checkRebuilt marks the window rebuilt once no partition is pending. f.mu is held.
func (f *Follower) checkRebuilt() {
	if len(f.pending) > 0 || f.rebuilt.Load() {
		return
	}
	d := f.now().Sub(f.started)
	f.rebuildTime.Set(d.Seconds())
	f.rebuildCount.Set(float64(f.read))
	f.rebuilt.Store(true)
	close(f.done)
	f.logger.Info("dedup window rebuilt", zap.Int64("messages", f.read), zap.Duration("took", d), zap.Int("identities", f.seen.Len()))
}

var (
	eventIDPrefix = []byte(`{"event_id":"`)
	sensorIDField = []byte(`,"sensor_id":"`)
)

// Identity reads event_id and sensor_id from a record of detections.raw.v1: directly where
// pkg/event's encoder put them (first, unescaped, as their patterns require), else by
// decoding the record.
func Identity(v []byte) (sensorID, eventID []byte, ok bool) {
	if rest, found := bytes.CutPrefix(v, eventIDPrefix); found {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			eventID = rest[:i]
			if rest, found = bytes.CutPrefix(rest[i+1:], sensorIDField); found {
				if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
					return rest[:j], eventID, true
				}
			}
		}
	}
	var r event.Raw
	if err := event.DecodeRaw(v, &r); err != nil || r.EventID == "" || r.SensorID == "" {
		return nil, nil, false
	}
	return []byte(r.SensorID), []byte(r.EventID), true
}
