package consume

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// retrier runs an operation again on retryable errors, with exponential backoff and full
// jitter, within a budget of attempts. It never sleeps past its context.
type retrier struct {
	initial, max time.Duration
	attempts     int
	onRetry      func(err error, attempt int, wait time.Duration)
}

// do runs op until it succeeds, returns an error that retryable rejects, or the budget is
// spent; the last error is returned, wrapped when the budget ran out.
func (r retrier) do(ctx context.Context, op func(context.Context) error, retryable func(error) bool) error {
	wait := r.initial
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt >= r.attempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		sleep := time.Duration(rand.Int64N(int64(wait))) + wait/2
		if r.onRetry != nil {
			r.onRetry(err, attempt, sleep)
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry interrupted: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, r.max)
	}
}
