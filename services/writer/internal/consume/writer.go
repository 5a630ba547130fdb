// Package consume is the writer's part of the shared consumer (pkg/kafka): the handler that
// stores one partition's batch of detections.enriched.v1 in ClickHouse, each event
// (sensor_id, event_id) once whatever is delivered twice.
//
// pkg/kafka fetches each assigned partition, hands its batches to Handle one after the
// other, commits a batch only once Handle returned nil, and retries a batch whose Handle
// failed. Handle decodes the batch into one block, dead-letters what cannot be stored,
// drops the events repeated in the batch and those detections already holds (the
// identity check, sink.Existing), and inserts the rest under a deduplication token made of
// their identities; concurrent partitions' blocks are merged into one insert (inserter).
// See the README for why this stores every event once.
package consume

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"time"

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
	// Insert writes blocks as one insert under a deduplication token.
	Insert(ctx context.Context, blocks []*rows.Block, token string) error
	// Existing returns the identities among b's rows that the store already holds.
	Existing(ctx context.Context, b *rows.Block) (map[sink.Identity]struct{}, error)
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
	// handled is the highest offset this process stored or dead-lettered, with every
	// offset before it; -1 when none. A batch retried after a failure skips it, so that
	// its dead letters are not sent twice.
	handled int64
	// seen holds the identities of the batch being decoded.
	seen map[sink.Identity]struct{}
	dead []kafka.Message
	log  *zap.Logger
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

// Assign is the OnAssign hook: it makes the partition's state and keeps the group's
// committed offset. Where the previous owner stored a batch without committing it, those
// messages are read again and the identity check drops them.
func (w *Writer) Assign(_ context.Context, a kafka.Assignment) (int64, error) {
	log := w.log.With(zap.String("topic", a.Topic), zap.Int("partition", a.Partition))
	p := &partition{id: a.Partition, dec: event.NewDecoder(), handled: -1, seen: map[sink.Identity]struct{}{}, log: log}
	w.mu.Lock()
	w.parts[a.Partition] = p
	w.mu.Unlock()
	return a.Committed, nil
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
// partition's, in offset order) is stored in ClickHouse, found there already, or
// dead-lettered: dead letters first, then the rows ClickHouse does not hold yet, each run
// split when ClickHouse rejects its data. An error leaves the batch to the consumer's
// retry, which calls Handle with the same messages again: what this process stored or
// dead-lettered is skipped, and the identity check drops what an insert of unknown
// outcome stored after all.
func (w *Writer) Handle(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p := w.partition(msgs[0].Partition)
	if p == nil {
		return fmt.Errorf("partition %d is not assigned", msgs[0].Partition)
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
		runs, err := w.fresh(ctx, b)
		if err != nil {
			w.m.batches.WithLabelValues("failed").Inc()
			return err
		}
		for _, r := range runs {
			if err := w.write(ctx, p, msgs, r); err != nil {
				w.m.batches.WithLabelValues("failed").Inc()
				return err
			}
			if err := w.sendDead(ctx, p); err != nil { // rows ClickHouse rejected
				return err
			}
		}
	}
	p.handled = msgs[len(msgs)-1].Offset
	return nil
}

// decode turns msgs into one block per month of observed_at (in the order months first
// appear, each in offset order), queues the dead letters of what cannot be decoded or
// stored, and leaves out an event already in the batch (a message produced twice: a
// producer's retry).
//
// One insert holds one month: detections is partitioned by month, so such an insert is one
// part, stored with its views' rows or not at all. With months mixed in one insert, the
// rollups once held a third fewer events than detections (TestMonthsInAnyOrder... under
// -race on the loaded 2-core machine; the cause was not isolated: a plain multi-month
// insert under a token keeps them equal). A batch whose months alternate thus costs one
// insert per month, not one per change of month as before.
func (w *Writer) decode(p *partition, msgs []kafka.Message) []*rows.Block {
	p.dead = p.dead[:0]
	clear(p.seen)
	var out []*rows.Block
	var months []int
	for i := range msgs {
		m := &msgs[i]
		if err := p.dec.Enriched(m.Value, &p.e); err != nil {
			p.deadLetter(w, m, event.ReasonDecodeFailed, err, nil)
			continue
		}
		id := sink.Identity{SensorID: p.e.SensorID, EventID: p.e.EventID}
		if _, dup := p.seen[id]; dup {
			w.m.duplicates.WithLabelValues("batch").Inc()
			continue
		}
		mo := monthOf(p.e.ObservedAt.Time)
		k := slices.Index(months, mo)
		if k < 0 {
			k = len(out)
			months = append(months, mo)
			out = append(out, w.free.get())
		}
		if err := out[k].Add(&p.e, m.Topic, m.Partition, m.Offset); err != nil {
			p.deadLetter(w, m, event.ReasonSchemaInvalid, err, &p.e)
			continue
		}
		p.seen[id] = struct{}{}
	}
	return slices.DeleteFunc(out, func(b *rows.Block) bool {
		if b.Len() == 0 {
			w.free.put([]*rows.Block{b})
			return true
		}
		return false
	})
}

// fresh returns b's rows that detections does not hold yet, as runs of consecutive rows
// (b itself when it holds none, nothing when it holds all).
func (w *Writer) fresh(ctx context.Context, b *rows.Block) ([]*rows.Block, error) {
	if b.Len() == 0 {
		return nil, nil
	}
	start := time.Now()
	found, err := w.store.Existing(ctx, b)
	if err != nil {
		return nil, err
	}
	w.m.checkSeconds.Observe(time.Since(start).Seconds())
	if len(found) == 0 {
		return []*rows.Block{b}, nil
	}
	w.m.duplicates.WithLabelValues("stored").Add(float64(len(found)))
	var runs []*rows.Block
	from := 0
	for i := range b.Len() {
		if _, ok := found[sink.Identity{SensorID: b.SensorID[i], EventID: b.EventID[i]}]; ok {
			if i > from {
				runs = append(runs, b.Slice(from, i))
			}
			from = i + 1
		}
	}
	if from < b.Len() {
		runs = append(runs, b.Slice(from, b.Len()))
	}
	return runs, nil
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
	tok := token(b)
	err := w.ins.insert(ctx, b, tok, monthOf(b.ObservedAt[0]))
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

// token is the deduplication token of a block: a hash of its identities, in order. The
// same events always give the same token, so a retried insert of them is dropped by
// ClickHouse, and no two different blocks share one — whatever their Kafka positions: a
// topic deleted and recreated reuses offsets, not identities.
func token(b *rows.Block) string {
	h := fnv.New128a()
	for i := range b.Len() {
		h.Write([]byte(b.SensorID[i]))
		h.Write([]byte{0})
		h.Write([]byte(b.EventID[i]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// monthOf is year*12+month of t.
func monthOf(t time.Time) int { return t.Year()*12 + int(t.Month()) }
