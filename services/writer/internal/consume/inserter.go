package consume

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/writer/internal/rows"
	"github.com/vigie/vigie/services/writer/internal/sink"
)

// inserter merges the blocks that partitions' handlers want stored at the same moment into
// one insert: with many partitions, one insert per round instead of one per partition, which
// is what a ClickHouse server wants (each insert makes a part, with fixed costs). It has no
// goroutine of its own: a handler that finds an insert slot free takes every waiting block
// of the oldest waiting month and inserts them for their handlers (flat combining); the
// others wait for their answer. At most slots inserts run at once.
//
// A merged insert's token is the sorted list of its blocks' tokens, so that its retries are
// deduplicated like a single block's.
type inserter struct {
	store Store
	retry retry.Policy
	slots chan struct{}
	m     *metrics
	log   *zap.Logger

	mu    sync.Mutex
	queue []*request // waiting, oldest first
}

// request is one partition's block waiting to be stored.
type request struct {
	block *rows.Block
	token string
	month int
	done  chan error // answered once, by the insert that took the request
}

// coalesceLimit caps the blocks merged into one insert.
const coalesceLimit = 64

func newInserter(store Store, slots int, p retry.Policy, m *metrics, log *zap.Logger) *inserter {
	return &inserter{store: store, retry: p, slots: make(chan struct{}, slots), m: m, log: log}
}

// insert stores b under token, merged with other partitions' blocks of the same month, and
// returns once the insert that took it is over: nil when stored, else its error. It returns
// ctx's error without waiting only while no insert has taken b yet, so a block is never
// stored after insert returned.
func (in *inserter) insert(ctx context.Context, b *rows.Block, token string, month int) error {
	r := &request{block: b, token: token, month: month, done: make(chan error, 1)}
	in.mu.Lock()
	in.queue = append(in.queue, r)
	in.mu.Unlock()
	for {
		select {
		case err := <-r.done:
			return err
		default:
		}
		select {
		case err := <-r.done:
			return err
		case in.slots <- struct{}{}:
			group := in.take()
			if len(group) == 0 {
				// Nothing waits, so another insert has taken r: wait for its answer.
				<-in.slots
				return <-r.done
			}
			in.store1(ctx, group)
			<-in.slots
		case <-ctx.Done():
			if in.withdraw(r) {
				return ctx.Err()
			}
			return <-r.done
		}
	}
}

// take removes from the queue the oldest request and the others of its month (one insert
// stays one month), up to coalesceLimit, in queue order.
func (in *inserter) take() []*request {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.queue) == 0 {
		return nil
	}
	month := in.queue[0].month
	var group []*request
	rest := in.queue[:0]
	for _, r := range in.queue {
		if r.month == month && len(group) < coalesceLimit {
			group = append(group, r)
		} else {
			rest = append(rest, r)
		}
	}
	clear(in.queue[len(rest):])
	in.queue = rest
	return group
}

// withdraw removes r from the queue; false when an insert has taken it already.
func (in *inserter) withdraw(r *request) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, q := range in.queue {
		if q == r {
			in.queue = append(in.queue[:i], in.queue[i+1:]...)
			return true
		}
	}
	return false
}

// store1 inserts a group and answers each request. When ClickHouse rejects the merged
// insert for its data, each block is inserted alone, so that only the partition holding the
// bad rows splits its block.
func (in *inserter) store1(ctx context.Context, group []*request) {
	err := in.insertGroup(ctx, group)
	if err != nil && len(group) > 1 && sink.Classify(err) == sink.Rejected {
		for _, r := range group {
			r.done <- in.insertGroup(ctx, []*request{r})
		}
		return
	}
	for _, r := range group {
		r.done <- err
	}
}

// insertGroup inserts the group's blocks as one insert, retrying a retryable error with the
// identical rows and token (the error may have come after ClickHouse stored them: the retry
// is then dropped as a duplicate) within the retry policy's budget.
func (in *inserter) insertGroup(ctx context.Context, group []*request) error {
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
	err := retry.Do(ctx, in.retry, func(ctx context.Context) error {
		err := in.store.Insert(ctx, blocks, token)
		if err != nil && sink.Classify(err) != sink.Retryable {
			return retry.Permanent(err)
		}
		return err
	}, func(err error, attempt int, wait time.Duration) {
		in.m.retries.Inc()
		in.log.Warn("retrying insert", zap.Int("rows", n), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	})
	if err == nil {
		in.m.insertSeconds.Observe(time.Since(start).Seconds())
		in.m.batchRows.Observe(float64(n))
	}
	return err
}
