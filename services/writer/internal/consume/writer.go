// Package consume is the writer's part of the shared consumer (pkg/kafka): the handler that
// stores one partition's batch of detections.enriched.v1 in ClickHouse exactly once in
// effect, and the assignment hook that resumes a partition after what ClickHouse holds.
//
// pkg/kafka fetches each assigned partition, hands its batches to Handle one after the
// other, commits a batch only once Handle returned nil, and retries a batch whose Handle
// failed. Handle decodes the batch, dead-letters what cannot be stored, cuts it into blocks
// that never mix two months of observed_at, and inserts each block under a deterministic
// deduplication token; concurrent partitions' blocks are merged into one insert (inserter).
// Assign starts a partition after the highest offset ClickHouse holds when that is ahead of
// the group's committed offset. See the README for why this stores every event once.
package consume

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// Store is where blocks go: ClickHouse in production (sink.Sink).
type Store interface {
	// Insert writes blocks as one insert under a deduplication token: stored whole, or not
	// at all, when they fall in one month.
	Insert(ctx context.Context, blocks []*rows.Block, token string) error
	// Stored returns the highest offset stored for a partition of topic (ok false: none).
	Stored(ctx context.Context, topic string, partition int) (offset int64, ok bool, err error)
}

var _ Store = (*sink.Sink)(nil)

// DeadLetters receives messages that cannot be stored; Write returns once they are
// acknowledged.
type DeadLetters interface {
	Write(ctx context.Context, msgs ...kafka.Message) error
}

var _ DeadLetters = (*kafka.Producer)(nil)

// Config is what the writer's handler needs besides its store and dead-letter producer.
type Config struct {
	// Topic is the consumed topic (topics.enriched).
	Topic string
	// MaxPendingRows bounds the messages held decoded across all partitions: a batch waits
	// for permits for all its messages before it is decoded.
	MaxPendingRows int
	// MaxConcurrentInserts is the number of inserts in flight; each merges the blocks
	// waiting at that moment.
	MaxConcurrentInserts int
	// InsertRetry is the retry of one insert with its own token (a retryable error may
	// come after ClickHouse stored it); past its MaxElapsed the handler fails and the
	// consumer retries the batch.
	InsertRetry retry.Policy
	// PartitionEnds returns the end offset of each partition of Topic (kafka.PartitionOffsets).
	PartitionEnds func(ctx context.Context) (map[int]int64, error)
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("topics.enriched: must not be empty")
	case c.MaxPendingRows <= 0:
		return errors.New("max_pending_rows: must be positive")
	case c.MaxConcurrentInserts <= 0:
		return errors.New("max_concurrent_inserts: must be positive")
	case c.PartitionEnds == nil:
		return errors.New("consume: no PartitionEnds")
	}
	return c.InsertRetry.Validate("insert_retry")
}

// Writer is the handler and hooks of the writer's consumer.
type Writer struct {
	cfg     Config
	store   Store
	dlq     DeadLetters
	log     *zap.Logger
	m       *metrics
	permits *semaphore.Weighted
	ins     *inserter
	free    freeBlocks

	mu    sync.Mutex
	parts map[int]*partition
}

// partition is what the writer keeps of one assigned partition, from Assign to Revoke. Only
// the partition's own consumer goroutine uses it (Handle is never called concurrently for
// one partition).
type partition struct {
	id  int
	dec *event.Decoder
	e   event.Enriched
	// handled is the highest offset known to be stored or dead-lettered, with every offset
	// before it; -1 when none is known.
	handled int64
	// inDoubt is set when an insert failed in a way that may have stored it: the next
	// batch first reads ClickHouse's offset again.
	inDoubt bool
	dead    []kafka.Message
	log     *zap.Logger
}

// New returns the writer's handler; pass Handle, Assign and Revoke to kafka.NewConsumer.
func New(cfg Config, store Store, dlq DeadLetters, log *zap.Logger, reg prometheus.Registerer) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := newMetrics(reg)
	log = log.Named("consume")
	return &Writer{
		cfg: cfg, store: store, dlq: dlq, log: log, m: m,
		permits: semaphore.NewWeighted(int64(cfg.MaxPendingRows)),
		ins:     newInserter(store, cfg.MaxConcurrentInserts, cfg.InsertRetry, m, log),
		parts:   map[int]*partition{},
	}, nil
}

// Hooks returns the consumer hooks: Assign and Revoke.
func (w *Writer) Hooks() kafka.Hooks { return kafka.Hooks{OnAssign: w.Assign, OnRevoke: w.Revoke} }

// Assign is the OnAssign hook: a newly assigned partition starts after the last row
// ClickHouse holds when that is ahead of the group's committed offset (the previous owner
// stored a batch but did not commit it), else at the committed offset. ClickHouse's offset
// is ignored when it lies beyond the partition's end: the topic was recreated, and its
// offsets mean nothing.
func (w *Writer) Assign(ctx context.Context, a kafka.Assignment) (int64, error) {
	log := w.log.With(zap.String("topic", a.Topic), zap.Int("partition", a.Partition))
	start := a.Committed
	last, ok, err := w.store.Stored(ctx, a.Topic, a.Partition)
	if err != nil {
		return 0, err
	}
	if ok {
		next := last + 1
		ends, err := w.cfg.PartitionEnds(ctx)
		if err != nil {
			return 0, fmt.Errorf("partition ends: %w", err)
		}
		end, known := ends[a.Partition]
		switch {
		case known && next > end:
			log.Warn("clickhouse holds offsets beyond the partition's end; using the committed offset",
				zap.Int64("offset", next), zap.Int64("end", end), zap.Int64("committed", a.Committed))
		case a.Committed < 0 || next > a.Committed:
			if a.Committed >= 0 {
				w.m.resumed.Inc()
			}
			log.Info("resuming after clickhouse's offset", zap.Int64("offset", next), zap.Int64("committed", a.Committed))
			start = next
		}
	}
	p := &partition{id: a.Partition, dec: event.NewDecoder(), handled: max(start-1, -1), log: log}
	w.mu.Lock()
	w.parts[a.Partition] = p
	w.mu.Unlock()
	return start, nil
}

// Revoke is the OnRevoke hook: the partition's state goes.
func (w *Writer) Revoke(a kafka.Assignment) {
	w.mu.Lock()
	delete(w.parts, a.Partition)
	w.mu.Unlock()
}

func (w *Writer) partition(id int) *partition {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.parts[id]
}

// Handle is the consumer's handler: it returns nil once every message of msgs (one
// partition's, in offset order) is stored in ClickHouse or dead-lettered, in offset order:
// dead letters first, then the blocks one after the other, each split when ClickHouse
// rejects its data. An error leaves the batch to the consumer's retry, which calls Handle
// with the same messages again: what is known to be stored is skipped, and after an insert
// of unknown outcome ClickHouse's offset says what is.
func (w *Writer) Handle(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p := w.partition(msgs[0].Partition)
	if p == nil {
		return fmt.Errorf("partition %d is not assigned", msgs[0].Partition)
	}
	if p.inDoubt {
		last, ok, err := w.store.Stored(ctx, w.cfg.Topic, p.id)
		if err != nil {
			return fmt.Errorf("read stored offset after a failed insert: %w", err)
		}
		if ok && last > p.handled {
			w.m.resumed.Inc()
			p.log.Info("clickhouse stored the failed insert; resuming after it", zap.Int64("offset", last+1))
			p.handled = last
		}
		p.inDoubt = false
	}
	skip := sort.Search(len(msgs), func(i int) bool { return msgs[i].Offset > p.handled })
	msgs = msgs[skip:]
	if len(msgs) == 0 {
		return nil
	}

	n := int64(min(len(msgs), w.cfg.MaxPendingRows))
	if err := w.permits.Acquire(ctx, n); err != nil {
		return err
	}
	w.m.pending.Add(float64(n))
	defer func() {
		w.m.pending.Sub(float64(n))
		w.permits.Release(n)
	}()

	blocks := w.decode(p, msgs)
	defer w.free.put(blocks)
	if err := w.sendDead(ctx, p); err != nil {
		return err
	}
	for _, b := range blocks {
		if err := w.write(ctx, p, msgs, b); err != nil {
			p.inDoubt = true
			w.m.batches.WithLabelValues("failed").Inc()
			return err
		}
		if err := w.sendDead(ctx, p); err != nil { // rows ClickHouse rejected
			p.inDoubt = true
			return err
		}
		p.handled = b.KafkaOffset[b.Len()-1]
	}
	p.handled = msgs[len(msgs)-1].Offset
	return nil
}

// decode turns msgs into blocks of one month each, in offset order, and queues the dead
// letters of what cannot be decoded or stored.
//
// A block never mixes two months of observed_at: detections is partitioned by month, and an
// insert that touches one partition is one part, stored atomically with its offsets
// projection. A block spanning two months would be two parts; if only the later one were
// stored, the highest stored offset would pass rows that are not stored.
func (w *Writer) decode(p *partition, msgs []kafka.Message) []*rows.Block {
	p.dead = p.dead[:0]
	var out []*rows.Block
	var cur *rows.Block
	month := 0
	for i := range msgs {
		m := &msgs[i]
		if err := p.dec.Enriched(m.Value, &p.e); err != nil {
			p.deadLetter(w, m, event.ReasonDecodeFailed, err, nil)
			continue
		}
		mo := p.e.ObservedAt.Year()*12 + int(p.e.ObservedAt.Month())
		if cur == nil || (cur.Len() > 0 && mo != month) {
			cur = w.free.get()
			out = append(out, cur)
		}
		if err := cur.Add(&p.e, m.Topic, m.Partition, m.Offset); err != nil {
			p.deadLetter(w, m, event.ReasonSchemaInvalid, err, &p.e)
			continue
		}
		month = mo
	}
	if n := len(out); n > 0 && out[n-1].Len() == 0 {
		w.free.put(out[n-1:])
		out = out[:n-1]
	}
	return out
}

// freeBlocks keeps emptied blocks for the next batches, whichever partition they come
// from: only the batches being handled hold blocks (max_pending_rows bounds them), instead
// of every assigned partition keeping one as large as its largest batch.
type freeBlocks struct {
	mu     sync.Mutex
	blocks []*rows.Block
}

// maxFreeBlocks bounds the blocks kept; the others are left to the garbage collector.
const maxFreeBlocks = 8

func (f *freeBlocks) get() *rows.Block {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.blocks); n > 0 {
		b := f.blocks[n-1]
		f.blocks = f.blocks[:n-1]
		return b
	}
	return &rows.Block{}
}

func (f *freeBlocks) put(blocks []*rows.Block) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range blocks {
		if len(f.blocks) == maxFreeBlocks {
			return
		}
		b.Reset()
		f.blocks = append(f.blocks, b)
	}
}

// write inserts b; when ClickHouse rejects it for its data, it splits it in halves, left
// before right, down to single rows that are dead-lettered, so that offsets reach
// ClickHouse in order: the dead letters of the left half are sent before the right half is
// stored.
func (w *Writer) write(ctx context.Context, p *partition, msgs []kafka.Message, b *rows.Block) error {
	tok := token(w.cfg.Topic, p.id, b)
	err := w.ins.insert(ctx, b, tok, monthOf(b))
	switch {
	case err == nil:
		w.m.batches.WithLabelValues("ok").Inc()
		w.m.rows.Add(float64(b.Len()))
		return nil
	case sink.Classify(err) != sink.Rejected:
		return fmt.Errorf("insert %s: %w", tok, err)
	}
	w.m.batches.WithLabelValues("split").Inc()
	if b.Len() == 1 {
		offset := b.KafkaOffset[0]
		i := sort.Search(len(msgs), func(i int) bool { return msgs[i].Offset >= offset })
		m := &msgs[i] // a block's rows come from msgs
		p.deadLetter(w, m, event.ReasonWriteFailed, err, nil)
		return nil
	}
	mid := b.Len() / 2
	if err := w.write(ctx, p, msgs, b.Slice(0, mid)); err != nil {
		return err
	}
	if err := w.sendDead(ctx, p); err != nil {
		return err
	}
	return w.write(ctx, p, msgs, b.Slice(mid, b.Len()))
}

// token is the deduplication token of a block: the same Kafka messages always give the
// same token, so a retried insert of them is dropped by ClickHouse.
func token(topic string, partition int, b *rows.Block) string {
	first, last := b.KafkaOffset[0], b.KafkaOffset[b.Len()-1]
	return topic + ":" + strconv.Itoa(partition) + ":" + strconv.FormatInt(first, 10) + "-" +
		strconv.FormatInt(last, 10) + ":" + strconv.Itoa(b.Len())
}

// monthOf is year*12+month of the block's observed_at (one month per block).
func monthOf(b *rows.Block) int {
	t := b.ObservedAt[0]
	return t.Year()*12 + int(t.Month())
}
