package consume

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// request is one partition's block waiting to be stored.
type request struct {
	block *rows.Block
	token string
	month int
	done  chan error
}

// coalesceLimit caps the blocks merged into one insert.
const coalesceLimit = 64

// insert hands b to the inserters and waits until it is stored or has failed for good.
func (w *Writer) insert(ctx context.Context, b *rows.Block, token string, month int) error {
	r := &request{block: b, token: token, month: month, done: make(chan error, 1)}
	select {
	case w.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runInserter stores requests until ctx ends. It merges the requests waiting at that moment
// (same month only: one insert stays one part) into one insert: with many partitions, one
// insert per round instead of one per partition, which is what a ClickHouse server wants
// (each insert makes a part, with fixed costs). The merged insert's token is the sorted list
// of its blocks' tokens, so its retries are deduplicated like a single block's. Each
// partition's rows in it are that partition's next offsets, so the highest stored offset of
// every partition still bounds a stored prefix.
func (w *Writer) runInserter(ctx context.Context) {
	var held []*request // waiting for a round of their month
	for {
		var first *request
		if len(held) > 0 {
			first, held = held[0], held[1:]
		} else {
			select {
			case first = <-w.requests:
			case <-ctx.Done():
				return
			}
		}
		group := []*request{first}
		rest := held[:0]
		for _, r := range held {
			if r.month == first.month && len(group) < coalesceLimit {
				group = append(group, r)
			} else {
				rest = append(rest, r)
			}
		}
		held = rest
	drain:
		for len(group) < coalesceLimit {
			select {
			case r := <-w.requests:
				if r.month == first.month {
					group = append(group, r)
				} else {
					held = append(held, r)
				}
			default:
				break drain
			}
		}
		w.store1(ctx, group)
	}
}

// store1 inserts a group and answers each request. When ClickHouse rejects the merged
// insert for its data, each block is inserted alone, so that only the partition holding the
// bad rows splits its block.
func (w *Writer) store1(ctx context.Context, group []*request) {
	err := w.insertGroup(ctx, group)
	if err != nil && len(group) > 1 && sink.Classify(err) == sink.Rejected {
		for _, r := range group {
			r.done <- w.insertGroup(ctx, []*request{r})
		}
		return
	}
	for _, r := range group {
		r.done <- err
	}
}

func (w *Writer) insertGroup(ctx context.Context, group []*request) error {
	sort.Slice(group, func(i, j int) bool { return group[i].token < group[j].token })
	blocks := make([]*rows.Block, len(group))
	tokens := make([]string, len(group))
	n := 0
	for i, r := range group {
		blocks[i], tokens[i] = r.block, r.token
		n += r.block.Len()
	}
	token := strings.Join(tokens, ",")
	start := time.Now()
	err := w.retry.do(ctx, func(ctx context.Context) error {
		return w.store.Insert(ctx, blocks, token)
	}, func(err error) bool { return ctx.Err() == nil && sink.Classify(err) == sink.Retryable })
	if err == nil {
		w.m.insertSeconds.Observe(time.Since(start).Seconds())
		w.m.batchRows.Observe(float64(n))
	}
	return err
}
