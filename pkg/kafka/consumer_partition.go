package kafka

import (
	"context"
	"errors"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/retry"
)

// partition reads one assigned partition for one generation.
type partition struct {
	c     *Consumer
	gen   *kafkago.Generation
	a     Assignment
	queue int // the reader's queue capacity
	log   *zap.Logger
}

// run reads the partition until the generation ends, Stop or Run's context ends. Its
// return ends the generation (kafka-go's Generation.Start), so it returns only then, or
// when a commit says the generation is over: the member then rejoins.
func (p *partition) run(runCtx, genCtx, handleCtx context.Context) {
	c := p.c
	// ctx ends with the generation, on Stop or with Run's context: no more fetching or
	// retrying. The batch in hand is handled under handleCtx.
	ctx, cancel := context.WithCancel(runCtx)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()
	// commitCtx ends with the generation or handleCtx: a commit on Stop is retried until
	// Stop's context expires.
	commitCtx, cancelCommit := context.WithCancel(handleCtx)
	defer cancelCommit()
	defer context.AfterFunc(genCtx, cancelCommit)()

	st := c.own(p.a.Partition)
	defer c.disown(p.a.Partition, st)
	start, ok := p.assign(ctx, st)
	if !ok {
		return
	}
	defer func() {
		if c.hooks.OnRevoke != nil {
			c.hooks.OnRevoke(p.a)
		}
		p.log.Info("partition released", zap.Int64("offset", st.position.Load()))
	}()

	reader := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:       c.conn.Brokers,
		Dialer:        c.dialer,
		Topic:         c.topic,
		Partition:     p.a.Partition,
		MinBytes:      1,
		MaxBytes:      c.cfg.MaxBytes,
		MaxWait:       min(c.cfg.BatchWait, 250*time.Millisecond),
		QueueCapacity: p.queue,
		// The reader retries broker errors itself; FetchMessage reports them after a few.
		MaxAttempts:    3,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    c.kafkaLogger(p.log),
	})
	defer func() {
		if err := reader.Close(); err != nil {
			p.log.Debug("close reader", zap.Error(err))
		}
	}()
	if err := reader.SetOffset(start); err != nil {
		p.log.Error("seek", zap.Int64("offset", start), zap.Error(err)) // only a closed reader fails
		return
	}
	if start >= 0 {
		st.position.Store(start)
	}
	p.log.Info("partition assigned", zap.Int64("committed", p.a.Committed), zap.Int64("offset", start))

	batch := make([]Message, 0, c.cfg.BatchSize)
	for ctx.Err() == nil {
		// Fetch errors (a broker down, a leader moving) are retried; what was fetched
		// before one is handled first.
		_ = retry.Do(ctx, c.cfg.Retry, func(context.Context) error {
			var err error
			batch, err = p.fill(ctx, reader, batch[:0])
			if len(batch) > 0 || ctx.Err() != nil {
				return nil
			}
			return err
		}, c.notifier(p.log, "fetch", nil))
		if len(batch) == 0 {
			continue
		}
		if !p.handle(ctx, handleCtx, commitCtx, st, batch) {
			return
		}
	}
}

// assign returns the offset to start reading from, from OnAssign (retried until it
// succeeds), or false when the partition was revoked (or Stop) first.
func (p *partition) assign(ctx context.Context, st *partState) (int64, bool) {
	onAssign := p.c.hooks.OnAssign
	if onAssign == nil {
		onAssign = func(_ context.Context, a Assignment) (int64, error) { return a.Committed, nil }
	}
	if ctx.Err() != nil {
		return 0, false
	}
	var start int64
	err := retry.Do(ctx, p.c.cfg.Retry, func(ctx context.Context) error {
		var err error
		start, err = onAssign(ctx, p.a)
		return transient(err)
	}, p.c.notifier(p.log, "assign", st))
	if err == nil {
		// OnAssign succeeded once and is not called again: only this check is retried.
		err = retry.Do(ctx, p.c.cfg.Retry, func(ctx context.Context) error {
			var err error
			start, err = p.withinPartition(ctx, start)
			return transient(err)
		}, p.c.notifier(p.log, "assign", st))
		if err != nil && p.c.hooks.OnRevoke != nil {
			p.c.hooks.OnRevoke(p.a)
		}
	}
	if err != nil {
		p.log.Info("partition revoked before it was assigned", zap.Error(err))
		return 0, false
	}
	p.c.setFailing(st, "assign", nil)
	return startOffset(start), true
}

// withinPartition returns start, or the partition's first offset when start lies beyond
// its end: the topic was deleted and recreated, and the group's committed offset belongs to
// the old one. kafka-go would wait at such an offset until the new topic reaches it,
// skipping everything before it; reading the new topic from its start is what is meant
// (consumers remove what they have seen twice by identity, not by position).
func (p *partition) withinPartition(ctx context.Context, start int64) (int64, error) {
	if start <= 0 {
		return start, nil
	}
	ends, err := PartitionOffsets(ctx, p.c.conn, p.c.topic)
	if err != nil {
		return 0, err
	}
	if end, ok := ends[p.a.Partition]; ok && start > end {
		p.log.Warn("start offset beyond the partition's end (topic recreated?); reading from its first offset",
			zap.Int64("offset", start), zap.Int64("end", end))
		p.c.m.restarts.Inc()
		return FirstOffset, nil
	}
	return start, nil
}

// startOffset maps OnAssign's answer to a reader offset: negative means the first offset.
func startOffset(offset int64) int64 {
	if offset < 0 {
		return kafkago.FirstOffset
	}
	return offset
}

// fill fetches up to BatchSize messages: it blocks for the first, then waits at most
// BatchWait for the rest. It returns what it has with the error that ended it.
func (p *partition) fill(ctx context.Context, r *kafkago.Reader, batch []Message) ([]Message, error) {
	msg, err := r.FetchMessage(ctx)
	if err != nil {
		return batch, err
	}
	batch = append(batch, msg)
	waitCtx, cancel := context.WithTimeout(ctx, p.c.cfg.BatchWait)
	defer cancel()
	for len(batch) < p.c.cfg.BatchSize {
		msg, err := r.FetchMessage(waitCtx)
		if err != nil {
			if waitCtx.Err() != nil && ctx.Err() == nil {
				return batch, nil // the batch window closed
			}
			return batch, err
		}
		batch = append(batch, msg)
	}
	return batch, nil
}

// handle hands batch to the handler under handleCtx until it succeeds (retried while ctx
// lasts), then commits the offset after it (retried while commitCtx lasts). It returns false when the batch was not handled or not
// committed: the partition is then given up, and its next owner reads the batch again.
func (p *partition) handle(ctx, handleCtx, commitCtx context.Context, st *partState, batch []Message) bool {
	c := p.c
	first, last := batch[0], batch[len(batch)-1]
	if st.position.Load() < 0 {
		st.position.Store(first.Offset)
	}
	// The first attempt runs even if ctx already ended: the batch in hand is finished.
	err := retry.Do(ctx, c.cfg.Retry, func(context.Context) error {
		began := time.Now()
		if err := c.handler(handleCtx, batch); err != nil {
			return transient(err)
		}
		c.m.handle.Observe(time.Since(began).Seconds())
		return nil
	}, c.notifier(p.log, "handler", st, zap.Int64("offset", first.Offset), zap.Int("messages", len(batch))))
	if err != nil {
		p.log.Warn("batch not handled, not committed", zap.Int64("offset", first.Offset), zap.Int("messages", len(batch)), zap.Error(err))
		return false
	}
	c.setFailing(st, "handler", nil)

	next := last.Offset + 1
	err = retry.Do(commitCtx, c.cfg.Retry, func(context.Context) error {
		began := time.Now()
		err := p.gen.CommitOffsets(map[string]map[int]int64{c.topic: {p.a.Partition: next}})
		if err != nil {
			if generationOver(err) {
				return retry.Permanent(err)
			}
			return err
		}
		c.m.commit.Observe(time.Since(began).Seconds())
		return nil
	}, c.notifier(p.log, "commit", nil, zap.Int64("offset", next)))
	if err != nil {
		// The handler's work is done but the group does not know it: the next owner
		// handles the batch again (at least once). Rejoin.
		p.log.Warn("commit lost, the batch will be read again", zap.Int64("offset", next), zap.Error(err))
		return false
	}
	st.position.Store(next)
	c.m.messages.Add(float64(len(batch)))
	if last.HighWaterMark > 0 {
		st.lag().Set(float64(max(last.HighWaterMark-next, 0)))
	}
	return true
}

// generationOver reports whether a commit failed because this member's generation ended.
func generationOver(err error) bool {
	return errors.Is(err, kafkago.IllegalGeneration) || errors.Is(err, kafkago.UnknownMemberId) ||
		errors.Is(err, kafkago.RebalanceInProgress) || errors.Is(err, kafkago.FencedInstanceID)
}

// transient hides a retry.Permanent mark: a handler's and OnAssign's errors are all retried.
func transient(err error) error {
	if retry.IsPermanent(err) {
		return unmarked{err}
	}
	return err
}

// unmarked is an error without its Unwrap, so that retry.Do does not see it as permanent.
type unmarked struct{ error }
