package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/retry"
)

var errDown = errors.New("down")

// fast retries every millisecond or so.
var fast = retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Multiplier: 2}

func TestDoRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	calls := 0
	var attempts []int
	err := retry.Do(context.Background(), fast, func(context.Context) error {
		calls++
		if calls < 4 {
			return errDown
		}
		return nil
	}, func(err error, attempt int, wait time.Duration) {
		require.ErrorIs(t, err, errDown)
		require.Positive(t, wait)
		attempts = append(attempts, attempt)
	})
	require.NoError(t, err)
	require.Equal(t, 4, calls)
	require.Equal(t, []int{1, 2, 3}, attempts, "notify is called before each wait with the failed attempt's number")
}

func TestDoPermanentStopsAtOnce(t *testing.T) {
	t.Parallel()
	bad := errors.New("bad request")
	calls := 0
	err := retry.Do(context.Background(), fast, func(context.Context) error {
		calls++
		return retry.Permanent(bad)
	}, func(error, int, time.Duration) { t.Fatal("a permanent error is not retried") })
	require.Equal(t, 1, calls)
	require.Same(t, bad, err, "the permanent error comes back unwrapped")
	require.False(t, retry.IsPermanent(err))
	require.True(t, retry.IsPermanent(retry.Permanent(bad)))
	require.NoError(t, retry.Permanent(nil))
}

func TestDoEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	p := retry.Policy{Initial: time.Hour, Max: time.Hour} // only ctx can end the wait
	err := retry.Do(ctx, p, func(context.Context) error {
		calls++
		return errDown
	}, func(error, int, time.Duration) { cancel() })
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, errDown, "the last error is kept")
	require.Equal(t, 1, calls)

	// op runs once even with an ended context, and is given it.
	calls = 0
	err = retry.Do(ctx, fast, func(ctx context.Context) error {
		calls++
		return ctx.Err()
	}, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, calls)

	// An op that succeeds on its one attempt after the end succeeds.
	require.NoError(t, retry.Do(ctx, fast, func(context.Context) error { return nil }, nil))
}

func TestDoMaxElapsed(t *testing.T) {
	t.Parallel()
	p := fast
	p.MaxElapsed = 50 * time.Millisecond
	began := time.Now()
	calls := 0
	err := retry.Do(context.Background(), p, func(context.Context) error {
		calls++
		return errDown
	}, nil)
	require.ErrorIs(t, err, retry.ErrGaveUp)
	require.ErrorIs(t, err, errDown)
	require.Greater(t, calls, 1)
	require.Less(t, time.Since(began), 5*time.Second)
}

func TestDoWaitsStayWithinJitterAndMax(t *testing.T) {
	t.Parallel()
	p := retry.Policy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	_ = retry.Do(ctx, p, func(context.Context) error { return errDown }, func(_ error, attempt int, wait time.Duration) {
		waits = append(waits, wait)
		if attempt == 8 {
			cancel()
		}
	})
	require.Len(t, waits, 8)
	interval := p.Initial
	for i, w := range waits {
		lo := time.Duration(float64(interval) * (1 - p.Jitter))
		hi := min(time.Duration(float64(interval)*(1+p.Jitter))+time.Nanosecond, p.Max)
		require.GreaterOrEqual(t, w, lo, "wait %d", i)
		require.LessOrEqual(t, w, hi, "wait %d never exceeds Max", i)
		interval = min(2*interval, p.Max)
	}
}

func TestDefaultAndZeroPolicy(t *testing.T) {
	t.Parallel()
	d := retry.Default()
	require.Equal(t, 100*time.Millisecond, d.Initial)
	require.Equal(t, 10*time.Second, d.Max)
	require.Equal(t, 2.0, d.Multiplier)
	require.Equal(t, 0.2, d.Jitter)
	require.Zero(t, d.MaxElapsed, "forever")
	require.NoError(t, d.Validate("retry"))
	require.ErrorContains(t, retry.Policy{Jitter: 2}.Validate("x"), "x.jitter")
	require.ErrorContains(t, retry.Policy{Initial: time.Second, Max: time.Millisecond}.Validate("x"), "x.max")

	// The zero policy is Default: its first wait is about 100 ms.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first time.Duration
	_ = retry.Do(ctx, retry.Policy{}, func(context.Context) error { return errDown }, func(_ error, _ int, wait time.Duration) {
		first = wait
		cancel()
	})
	require.InDelta(t, float64(100*time.Millisecond), float64(first), float64(20*time.Millisecond)+1)
}
