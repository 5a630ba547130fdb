package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder notes the order in which parts stop and finish.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// worker runs until stopped, then takes a little time to "finish in-flight work".
func worker(r *recorder, name string, started *sync.WaitGroup) (func(context.Context) error, func(context.Context) error) {
	stopped := make(chan struct{})
	started.Add(1)
	run := func(ctx context.Context) error {
		started.Done()
		select {
		case <-stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.add(name + " drained")
		return nil
	}
	stop := func(context.Context) error {
		r.add(name + " stop")
		close(stopped)
		return nil
	}
	return run, stop
}

func TestShutdownInOrderOnSignal(t *testing.T) {
	var r recorder
	var started sync.WaitGroup
	g := lifecycle.New(zap.NewNop(), 5*time.Second)
	for _, name := range []string{"source", "batcher", "sink"} {
		run, stop := worker(&r, name, &started)
		g.Add(name, run, stop)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	started.Wait()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	require.NoError(t, <-done)
	require.Equal(t, []string{"source stop", "source drained", "batcher stop", "batcher drained", "sink stop", "sink drained"}, r.list())
}

func TestFailingPartStopsTheOthers(t *testing.T) {
	var r recorder
	var started sync.WaitGroup
	g := lifecycle.New(zap.NewNop(), 5*time.Second)
	run, stop := worker(&r, "server", &started)
	g.Add("server", run, stop)
	boom := errors.New("broker gone")
	g.Add("consumer", func(context.Context) error {
		started.Wait()
		return boom
	}, nil)
	err := g.Run(context.Background())
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "consumer: broker gone")
	require.Equal(t, []string{"server stop", "server drained"}, r.list())
}

func TestPartWithoutStopIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := lifecycle.New(zap.NewNop(), 5*time.Second)
	running := make(chan struct{})
	g.Add("loop", func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	<-running
	cancel()
	require.NoError(t, <-done, "a part cancelled on shutdown is not a failure")
}

func TestShutdownTimeoutForcesStuckParts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := lifecycle.New(zap.NewNop(), 100*time.Millisecond)
	running := make(chan struct{})
	g.Add("stuck", func(ctx context.Context) error {
		close(running)
		<-ctx.Done() // ignores stop; only the forced cancel ends it
		return ctx.Err()
	}, func(context.Context) error { return nil })
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	<-running
	start := time.Now()
	cancel()
	require.NoError(t, <-done)
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestStartAndShutdownHooks(t *testing.T) {
	var r recorder
	var started sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	g := lifecycle.New(zap.NewNop(), 5*time.Second)
	run, stop := worker(&r, "part", &started)
	g.Add("part", run, stop)
	g.OnStart(func() { r.add("started") })
	g.OnShutdown(func() { r.add("shutdown begins") })
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	started.Wait()
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, []string{"started", "shutdown begins", "part stop", "part drained"}, r.list())
}
