package inflight_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigie/vigie/services/ingest/internal/inflight"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func enter(t *testing.T, l *inflight.Limiter, n int64) *inflight.Ticket {
	t.Helper()
	tk, err := l.Enter()
	require.NoError(t, err)
	require.NoError(t, tk.Reserve(context.Background(), n))
	return tk
}

// reserveLater starts tk.Reserve(n) and returns where its result arrives, once it waits in
// line (waiting is how many then wait).
func reserveLater(t *testing.T, ctx context.Context, l *inflight.Limiter, tk *inflight.Ticket, n int64, waiting int) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tk.Reserve(ctx, n) }()
	require.Eventually(t, func() bool { return l.Waiting() == waiting }, 5*time.Second, time.Millisecond)
	return done
}

func TestRequestSlots(t *testing.T) {
	l := inflight.New(2, 100)
	a, err := l.Enter()
	require.NoError(t, err)
	_, err = l.Enter()
	require.NoError(t, err)
	_, err = l.Enter()
	require.ErrorIs(t, err, inflight.ErrRequests)
	a.Leave()
	a.Leave() // twice: once
	require.Equal(t, 1, l.Requests())
	_, err = l.Enter()
	require.NoError(t, err)
	_, err = l.Enter()
	require.ErrorIs(t, err, inflight.ErrRequests)
}

func TestFirstComeFirstServed(t *testing.T) {
	l := inflight.New(10, 100)
	a := enter(t, l, 80)
	require.EqualValues(t, 80, l.Bytes())

	// More than the whole budget: refused at once.
	big, _ := l.Enter()
	require.ErrorIs(t, big.Reserve(context.Background(), 101), inflight.ErrBytes)

	b, _ := l.Enter()
	bDone := reserveLater(t, context.Background(), l, b, 30, 1)
	// c would fit, but b came first.
	c, _ := l.Enter()
	cDone := reserveLater(t, context.Background(), l, c, 10, 2)

	a.Shrink(50) // 50 + 30 + 10 fit
	require.NoError(t, <-bDone)
	require.NoError(t, <-cDone)
	require.EqualValues(t, 90, l.Bytes())
	require.EqualValues(t, 30, b.Bytes())

	high, now := l.TakeHigh()
	require.EqualValues(t, 90, high)
	require.EqualValues(t, 90, now)
	for _, tk := range []*inflight.Ticket{a, b, c, big} {
		tk.Leave()
	}
	require.Zero(t, l.Bytes())
	require.Zero(t, l.Requests())
	high, _ = l.TakeHigh()
	require.EqualValues(t, 90, high, "the most since the last TakeHigh")
	high, _ = l.TakeHigh()
	require.Zero(t, high)
}

func TestWaitEnds(t *testing.T) {
	l := inflight.New(10, 100)
	a := enter(t, l, 90)
	ctx, cancel := context.WithCancel(context.Background())
	b, _ := l.Enter()
	bDone := reserveLater(t, ctx, l, b, 50, 1)
	c, _ := l.Enter()
	cDone := reserveLater(t, context.Background(), l, c, 10, 2)
	cancel()
	require.ErrorIs(t, <-bDone, inflight.ErrBytes)
	// b left the head of the line: c, which fits, is served.
	require.NoError(t, <-cDone)
	require.Zero(t, b.Bytes())
	require.EqualValues(t, 100, l.Bytes())
	a.Leave()
	c.Leave()
	b.Leave()
	require.Zero(t, l.Bytes())
}

func TestGrow(t *testing.T) {
	l := inflight.New(10, 100)
	a := enter(t, l, 50)
	// A new request waits in line for 60...
	n, _ := l.Enter()
	nDone := reserveLater(t, context.Background(), l, n, 60, 1)
	// ...but a request that holds bytes and reads more gets what is free at once.
	require.NoError(t, a.Reserve(context.Background(), 10))
	require.EqualValues(t, 60, a.Bytes())
	a.Shrink(30) // free 70: n gets its 60
	require.NoError(t, <-nDone)
	b := enter(t, l, 10) // 100: full
	// a grows beyond what is free: it waits, first in line, ahead of newcomers.
	c, _ := l.Enter()
	cDone := reserveLater(t, context.Background(), l, c, 5, 1)
	aDone := reserveLater(t, context.Background(), l, a, 20, 2)
	// b would have to wait too: refused, so that two holders never wait for each other.
	require.ErrorIs(t, b.Reserve(context.Background(), 5), inflight.ErrBytes)
	b.Leave() // frees 10: not enough for a's 20, and c waits behind a
	require.Equal(t, 2, l.Waiting())
	n.Leave() // frees 60: a, then c
	require.NoError(t, <-aDone)
	require.NoError(t, <-cDone)
	require.EqualValues(t, 50, a.Bytes())
	require.EqualValues(t, 55, l.Bytes())
	// The grower's turn is over: another holder may wait for more now.
	require.NoError(t, c.Reserve(context.Background(), 45))
	cDone = reserveLater(t, context.Background(), l, c, 1, 1)
	a.Leave()
	require.NoError(t, <-cDone)
	c.Leave()
	require.Zero(t, l.Bytes())
}

// TestConcurrent: many requests reserving, growing and leaving never hold more than the
// budget, and the limiter ends empty.
func TestConcurrent(t *testing.T) {
	const budget = 1000
	l := inflight.New(16, budget)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				tk, err := l.Enter()
				if err != nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(3))*time.Millisecond)
				if tk.Reserve(ctx, int64(1+r.IntN(400))) == nil {
					for range r.IntN(3) {
						if tk.Reserve(ctx, int64(1+r.IntN(300))) != nil {
							break
						}
					}
					if b := l.Bytes(); b > budget {
						t.Errorf("%d bytes reserved, budget %d", b, budget)
					}
					tk.Shrink(tk.Bytes() / 2)
				}
				cancel()
				tk.Leave()
			}
		}()
	}
	wg.Wait()
	require.Zero(t, l.Bytes())
	require.Zero(t, l.Requests())
	require.Zero(t, l.Waiting())
	high, _ := l.TakeHigh()
	require.LessOrEqual(t, high, int64(budget))
}

// TestTrimAfterBurst: memory is given back once a burst of at least the threshold is over,
// once, and not while requests still hold bytes.
func TestTrimAfterBurst(t *testing.T) {
	l := inflight.New(10, 100)
	trims := 0
	tr := inflight.NewTrimmer(l, time.Hour, 50, func() { trims++ })
	frees := 0
	tr.SetFree(func() { frees++ })

	small := enter(t, l, 20)
	small.Leave()
	require.False(t, tr.Check(), "below the threshold: no burst")

	a := enter(t, l, 40)
	b := enter(t, l, 20)
	require.False(t, tr.Check(), "a burst, not over")
	b.Leave()
	require.False(t, tr.Check(), "still holding")
	a.Leave()
	require.True(t, tr.Check(), "over: trimmed")
	require.False(t, tr.Check(), "once")
	require.Equal(t, 1, frees)
	require.Equal(t, 1, trims)

	// A burst that came and went between two checks counts too.
	c := enter(t, l, 60)
	c.Leave()
	require.True(t, tr.Check())

	// Run stops with its context.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inflight.NewTrimmer(l, time.Millisecond, 50, nil).Run(ctx) }()
	cancel()
	require.NoError(t, <-done)
}
