package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/writer/internal/decode"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// partition consumes one assigned partition for one generation.
type partition struct {
	w      *Writer
	id     int
	start  int64
	commit func(partition int, next int64) error

	block   rows.Block
	dead    []kafkago.Message
	held    int64 // permits held: rows in block
	next    int64 // offset after the last message taken into block or dead
	taken   bool  // a message was taken since the last flush
	firstAt time.Time
	month   int // year*12 + month of the block's rows
	log     *zap.Logger
}

// run reads the partition until the generation ends, Stop is called or ctx is cancelled.
// Pending rows are flushed on a rebalance or Stop, so that the next owner resumes after them
// (it reads ClickHouse's offsets only once every member has left the old generation).
func (p *partition) run(ctx, genCtx context.Context) error {
	w := p.w
	p.log = w.log.With(zap.String("topic", w.cfg.Topic), zap.Int("partition", p.id))
	reader := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:       w.cfg.Brokers,
		Topic:         w.cfg.Topic,
		Partition:     p.id,
		MinBytes:      1,
		MaxBytes:      w.cfg.FetchMaxBytes,
		MaxWait:       min(w.cfg.BatchDelay, 250*time.Millisecond),
		QueueCapacity: 500,
	})
	defer reader.Close()
	if err := reader.SetOffset(p.start); err != nil {
		return fmt.Errorf("seek to %d: %w", p.start, err)
	}
	p.log.Info("partition assigned", zap.Int64("offset", p.start))
	defer func() {
		w.permits.Release(p.held)
		w.m.pending.Sub(float64(p.held))
	}()

	// fetchCtx ends with the generation, on Stop or with ctx; batchCtx additionally ends
	// when the current batch's delay expires.
	fetchCtx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	go func() {
		select {
		case <-genCtx.Done():
		case <-w.stopping:
		case <-fetchCtx.Done():
		}
		cancelFetch()
	}()

	lag := w.m.lag.WithLabelValues(strconv.Itoa(p.id))
	var e event.Enriched
	dec := decode.New()
	batch := batchTimer{parent: fetchCtx}
	defer batch.stop()
	batchCtx := fetchCtx
	for {
		m, err := reader.FetchMessage(batchCtx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil // forced: nothing is committed past what was written
			case fetchCtx.Err() != nil:
				// The generation ended or Stop: write what is held, then give the partition up.
				return p.flush(ctx)
			case batchCtx.Err() != nil:
				batchCtx = batch.stop()
				if err := p.flush(ctx); err != nil {
					return err
				}
				lag.Set(float64(reader.Lag()))
				continue
			default:
				return fmt.Errorf("fetch: %w", err)
			}
		}
		if !p.taken {
			p.firstAt = time.Now()
			batchCtx = batch.start(fetchCtx, p.firstAt.Add(w.cfg.BatchDelay))
		}
		p.taken = true
		p.next = m.Offset + 1
		if err := dec.Decode(m.Value, &e); err != nil {
			p.deadLetter(m, event.ReasonDecodeFailed, err)
		} else if invalid, err := p.add(ctx, &e, m); err != nil {
			if errors.Is(err, errPermits) {
				return nil // ctx ended while waiting for memory
			}
			return err
		} else if invalid != nil {
			p.deadLetter(m, event.ReasonSchemaInvalid, invalid)
		}
		if p.block.Len() >= w.cfg.BatchRows {
			batchCtx = batch.stop()
			if err := p.flush(ctx); err != nil {
				return err
			}
			lag.Set(float64(reader.Lag()))
		}
	}
}

// batchTimer is the deadline of the batch being filled: a context derived from the fetch
// context, so that a fetch waiting for more messages returns when the batch is due.
type batchTimer struct {
	parent context.Context
	cancel context.CancelFunc
}

func (t *batchTimer) start(parent context.Context, deadline time.Time) context.Context {
	t.stop()
	t.parent = parent
	ctx, cancel := context.WithDeadline(parent, deadline)
	t.cancel = cancel
	return ctx
}

// stop cancels the deadline and returns the parent context to fetch with.
func (t *batchTimer) stop() context.Context {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
	return t.parent
}

var errPermits = errors.New("no memory permits")

// add appends e to the block, first taking a memory permit: when all are taken, the
// partition writes what it holds and then waits for other partitions to free theirs.
//
// A block never mixes two months of observed_at: detections is partitioned by month, and an
// insert that touches one partition is one part, stored atomically with its offsets
// projection. A block spanning two months would be two parts; if only the later one were
// stored, the highest stored offset would pass rows that are not stored.
func (p *partition) add(ctx context.Context, e *event.Enriched, m kafkago.Message) (invalid, err error) {
	w := p.w
	month := e.ObservedAt.Year()*12 + int(e.ObservedAt.Month())
	if p.block.Len() > 0 && month != p.month {
		if err := p.flushAt(ctx, m.Offset); err != nil {
			return nil, err
		}
	}
	if !w.permits.TryAcquire(1) {
		if p.block.Len() > 0 {
			if err := p.flushAt(ctx, m.Offset); err != nil {
				return nil, err
			}
		}
		if err := w.permits.Acquire(ctx, 1); err != nil {
			return nil, errPermits
		}
	}
	if err := p.block.Add(e, m.Topic, m.Partition, m.Offset); err != nil {
		w.permits.Release(1)
		return err, nil
	}
	p.month = month
	p.held++
	w.m.pending.Inc()
	return nil, nil
}

// flushAt flushes everything taken before offset (the message being added is not yet in
// the block and not yet handled).
func (p *partition) flushAt(ctx context.Context, offset int64) error {
	saved := p.next
	p.next = offset
	err := p.flush(ctx)
	p.next = saved
	p.taken = true
	return err
}

func (p *partition) deadLetter(m kafkago.Message, reason string, cause error) {
	p.dead = append(p.dead, p.w.deadLetter(m, reason, cause))
	p.w.m.dlq.WithLabelValues(reason).Inc()
	p.log.Warn("dead-lettering message", zap.Int64("offset", m.Offset), zap.String("reason", reason), zap.Error(cause))
}

// flush makes everything taken durable, in offset order: dead letters first, then the
// block (split on rejection, rejected rows dead-lettered), then the commit of p.next.
// ClickHouse's highest offset then never passes a message that is not yet handled.
func (p *partition) flush(ctx context.Context) error {
	if !p.taken {
		return nil
	}
	w := p.w
	if err := p.sendDead(ctx); err != nil {
		return err
	}
	if p.block.Len() > 0 {
		start := time.Now()
		n := p.block.Len()
		if err := p.write(ctx, &p.block); err != nil {
			w.m.batches.WithLabelValues("failed").Inc()
			return err
		}
		// Rows rejected by ClickHouse were dead-lettered during the split.
		if err := p.sendDead(ctx); err != nil {
			return err
		}
		p.log.Debug("batch written", zap.Int("rows", n), zap.Duration("took", time.Since(start)))
	}
	if err := p.commit(p.id, p.next); err != nil {
		// ClickHouse, not the group, is the record of what was written: a commit lost in a
		// rebalance only means the next owner reads ClickHouse's offset instead.
		p.log.Info("commit", zap.Int64("offset", p.next), zap.Error(err))
	}
	p.block.Reset()
	w.permits.Release(p.held)
	w.m.pending.Sub(float64(p.held))
	p.held = 0
	p.taken = false
	return nil
}

func (p *partition) sendDead(ctx context.Context) error {
	if len(p.dead) == 0 {
		return nil
	}
	w := p.w
	err := w.retry.do(ctx, func(ctx context.Context) error {
		return w.dlq.WriteMessages(ctx, p.dead...)
	}, func(error) bool { return ctx.Err() == nil })
	if err != nil {
		w.m.giveUps.Inc()
		return fmt.Errorf("dead-letter %d messages: %w", len(p.dead), err)
	}
	p.dead = p.dead[:0]
	return nil
}

// write inserts b; when ClickHouse rejects it for its data, it splits it in halves, left
// before right, down to single rows that are dead-lettered, so that offsets reach
// ClickHouse in order.
func (p *partition) write(ctx context.Context, b *rows.Block) error {
	w := p.w
	tok := token(w.cfg.Topic, p.id, b)
	err := w.insert(ctx, b, tok, p.month)
	switch {
	case err == nil:
		w.m.batches.WithLabelValues("ok").Inc()
		w.m.rows.Add(float64(b.Len()))
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("insert interrupted: %w", ctx.Err())
	case sink.Classify(err) != sink.Rejected:
		w.m.giveUps.Inc()
		return fmt.Errorf("insert %s: %w", tok, err)
	}
	w.m.batches.WithLabelValues("split").Inc()
	if b.Len() == 1 {
		p.dead = append(p.dead, w.deadLetter(kafkago.Message{
			Topic: w.cfg.Topic, Partition: p.id, Offset: b.KafkaOffset[0],
			Value: []byte(`{"event_id":` + strconv.Quote(b.EventID[0]) + `,"sensor_id":` + strconv.Quote(b.SensorID[0]) + `}`),
		}, event.ReasonWriteFailed, err))
		w.m.dlq.WithLabelValues(event.ReasonWriteFailed).Inc()
		p.log.Warn("row rejected by clickhouse", zap.Int64("offset", b.KafkaOffset[0]), zap.Error(err))
		return nil
	}
	mid := b.Len() / 2
	if err := p.write(ctx, b.Slice(0, mid)); err != nil {
		return err
	}
	// Dead letters of the left half go out before the right half's rows reach ClickHouse.
	if err := p.sendDead(ctx); err != nil {
		return err
	}
	return p.write(ctx, b.Slice(mid, b.Len()))
}
