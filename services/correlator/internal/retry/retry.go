// Package retry retries an operation with context-aware exponential backoff and jitter,
// within a budget of attempts. ClickHouse connections that fail mid-query are dropped from
// clickhouse-go's pool, so a retry runs on a fresh connection.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is a retry budget.
type Policy struct {
	Attempts int
	Base     time.Duration
	Max      time.Duration
}

// Default tries 8 times from 100 ms up to 2 s.
var Default = Policy{Attempts: 8, Base: 100 * time.Millisecond, Max: 2 * time.Second}

// ErrPermanent marks an error not worth retrying (wrap it with fmt.Errorf("...: %w")).
var ErrPermanent = errors.New("permanent")

// Do runs fn until it succeeds, returns an error wrapping ErrPermanent, the budget is spent
// or ctx ends; onRetry (may be nil) is called before each new attempt.
func (p Policy) Do(ctx context.Context, fn func(ctx context.Context) error, onRetry func(err error)) error {
	delay := p.Base
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || errors.Is(err, ErrPermanent) || attempt >= p.Attempts {
			return err
		}
		if onRetry != nil {
			onRetry(err)
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		delay = min(2*delay, p.Max)
	}
}
