// Package retry is Vigie's one retry policy: capped exponential backoff with jitter, aware
// of its context, on cenkalti/backoff/v5. Every retry in the tree (Kafka, ClickHouse,
// produce, dead letters) goes through Do, so that a dependency that is down is retried the
// same way everywhere: transient errors for as long as it takes (or a budget, MaxElapsed),
// errors marked Permanent at once, and never a bare sleep loop.
//
// Logging and metrics belong to the caller: Do calls notify before each wait, with the
// error, the attempt number and the wait, so that a caller logs and counts retries where it
// knows what is being retried.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is a backoff schedule. The n-th wait is Initial·Multiplierⁿ⁻¹, capped at Max, then
// spread by ±Jitter (0.2 = ±20%) and capped at Max again: a wait never exceeds Max.
type Policy struct {
	// Initial is the first wait.
	Initial time.Duration
	// Max caps every wait.
	Max time.Duration
	// Multiplier grows the wait after each attempt (1 keeps it constant).
	Multiplier float64
	// Jitter spreads each wait uniformly by ±Jitter of itself, so that clients that failed
	// together do not retry together. 0 disables it; it is clamped to [0, 1].
	Jitter float64
	// MaxElapsed bounds the whole retry: Do gives up once the next wait would end past it.
	// 0 retries until the context ends.
	MaxElapsed time.Duration
}

// Default is 100 ms doubling to 10 s, ±20% jitter, retrying until the context ends. A zero
// Policy means Default.
func Default() Policy {
	return Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
}

// normalized fills what is unset: a zero Policy is Default, a zero Initial, Max or
// Multiplier takes Default's, and Max is at least Initial.
func (p Policy) normalized() Policy {
	if p == (Policy{}) {
		return Default()
	}
	d := Default()
	if p.Initial <= 0 {
		p.Initial = d.Initial
	}
	if p.Max <= 0 {
		p.Max = max(d.Max, p.Initial)
	}
	p.Max = max(p.Max, p.Initial)
	if p.Multiplier <= 0 {
		p.Multiplier = d.Multiplier
	}
	p.Multiplier = max(p.Multiplier, 1)
	p.Jitter = min(max(p.Jitter, 0), 1)
	p.MaxElapsed = max(p.MaxElapsed, 0)
	return p
}

// Validate names the bad field; prefix is the policy's place in the configuration.
func (p Policy) Validate(prefix string) error {
	switch {
	case p.Initial < 0:
		return fmt.Errorf("%s.initial: must not be negative", prefix)
	case p.Max < 0:
		return fmt.Errorf("%s.max: must not be negative", prefix)
	case p.Max > 0 && p.Max < p.Initial:
		return fmt.Errorf("%s.max: must not be shorter than initial", prefix)
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fmt.Errorf("%s.multiplier: must be at least 1", prefix)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("%s.jitter: must be between 0 and 1", prefix)
	case p.MaxElapsed < 0:
		return fmt.Errorf("%s.max_elapsed: must not be negative", prefix)
	}
	return nil
}

// Permanent marks err as not worth retrying: Do returns it (unwrapped) at once. It returns
// nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return backoff.Permanent(err)
}

// IsPermanent reports whether err was marked with Permanent (and not yet unwrapped by Do).
func IsPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}

// ErrGaveUp is wrapped by the error Do returns when MaxElapsed passed.
var ErrGaveUp = errors.New("gave up retrying")

// Do runs op until it returns nil, a Permanent error (unwrapped and returned), ctx ends, or
// MaxElapsed passes. op runs at least once, even when ctx has already ended (it is given
// ctx, and should honour it). notify (may be nil) is called before each wait, with the error, the
// number of the attempt that failed (1 for the first) and the wait: log and count there.
//
// When ctx ends, Do returns an error that wraps both ctx's cause and op's last error. When
// MaxElapsed passes, it returns an error that wraps ErrGaveUp and op's last error.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error, notify func(err error, attempt int, wait time.Duration)) error {
	p = p.normalized()
	var (
		attempt int
		lastErr error
	)
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		lastErr = op(ctx)
		return struct{}{}, lastErr
	},
		backoff.WithBackOff(&capped{
			ExponentialBackOff: backoff.ExponentialBackOff{
				InitialInterval:     p.Initial,
				RandomizationFactor: p.Jitter,
				Multiplier:          p.Multiplier,
				MaxInterval:         p.Max,
			},
			max: p.Max,
		}),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
		backoff.WithNotify(func(err error, wait time.Duration) {
			if notify != nil {
				notify(err, attempt, wait)
			}
		}),
	)
	switch {
	case err == nil:
		return nil
	case lastErr == nil || IsPermanent(lastErr):
		// backoff unwrapped the permanent error; or ctx ended with no failure seen.
		return err
	case ctx.Err() != nil:
		if errors.Is(lastErr, err) {
			return lastErr
		}
		return fmt.Errorf("%w (last error: %w)", err, lastErr)
	default:
		return fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, attempt, lastErr)
	}
}

// capped keeps the jittered wait within max (backoff caps the interval before jitter).
type capped struct {
	backoff.ExponentialBackOff
	max time.Duration
}

func (c *capped) NextBackOff() time.Duration { return min(c.ExponentialBackOff.NextBackOff(), c.max) }
