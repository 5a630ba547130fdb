// Package lifecycle (the engine of pkg/service) runs a service's long-running parts under one context and shuts them
// down in order, within a bounded time.
//
// Each part is a pair: run blocks doing the work; stop asks it to finish gracefully (stop
// accepting work, finish what is in flight) and run then returns. On SIGINT/SIGTERM, or when
// any part's run returns, the group stops the parts one by one in the order they were added,
// waiting for each part's run to return before stopping the next. So a service adds its
// source first and its sink last: the HTTP server or Kafka consumer stops taking work, its
// in-flight batches finish, and only then is the producer or database connection closed.
// When the shutdown timeout expires, the context given to every run is cancelled so that
// whatever is still blocked gives up.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Group is a set of parts run together. The zero value is not usable; use New.
type Group struct {
	logger     *zap.Logger
	timeout    time.Duration
	parts      []part
	onStart    []func()
	onShutdown []func()
}

type part struct {
	name   string
	run    func(ctx context.Context) error
	stop   func(ctx context.Context) error
	done   chan struct{}
	cancel context.CancelFunc
	err    error
}

// New returns a group whose shutdown takes at most timeout.
func New(logger *zap.Logger, timeout time.Duration) *Group {
	return &Group{logger: logger.Named("lifecycle"), timeout: timeout}
}

// Add registers a part. stop may be nil when cancelling run's context is the way to stop it.
func (g *Group) Add(name string, run func(ctx context.Context) error, stop func(ctx context.Context) error) {
	g.parts = append(g.parts, part{name: name, run: run, stop: stop})
}

// OnStart registers fn to be called once every part's run has been started.
func (g *Group) OnStart(fn func()) { g.onStart = append(g.onStart, fn) }

// OnShutdown registers fn to be called as soon as shutdown begins, before the first part is
// stopped: the place to mark the service not ready.
func (g *Group) OnShutdown(fn func()) { g.onShutdown = append(g.onShutdown, fn) }

// Run starts every part and blocks until all have returned. It returns the first error of
// a part that failed on its own (not because it was told to stop), or of a stop function.
func (g *Group) Run(ctx context.Context) error {
	if len(g.parts) == 0 {
		return errors.New("lifecycle: no parts")
	}
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	// runCtx outlives ctx: runs are stopped by their stop functions first, and only forced
	// by cancelling runCtx when the shutdown deadline passes.
	runCtx, force := context.WithCancel(context.WithoutCancel(ctx))
	defer force()

	exited := make(chan int, len(g.parts))
	for i := range g.parts {
		p := &g.parts[i]
		p.done = make(chan struct{})
		partCtx, cancel := context.WithCancel(runCtx)
		p.cancel = cancel
		go func() {
			defer close(p.done)
			p.err = p.run(partCtx)
			exited <- i
		}()
	}
	for _, fn := range g.onStart {
		fn()
	}

	var first error
	select {
	case <-ctx.Done():
		g.logger.Info("shutting down", zap.String("cause", context.Cause(ctx).Error()))
	case i := <-exited:
		p := &g.parts[i]
		if p.err != nil {
			first = fmt.Errorf("%s: %w", p.name, p.err)
			g.logger.Error("part failed, shutting down", zap.String("part", p.name), zap.Error(p.err))
		} else {
			g.logger.Info("part finished, shutting down", zap.String("part", p.name))
		}
	}

	for _, fn := range g.onShutdown {
		fn()
	}
	deadline, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	go func() {
		<-deadline.Done()
		force()
	}()
	for i := range g.parts {
		p := &g.parts[i]
		start := time.Now()
		if p.stop != nil {
			if err := p.stop(deadline); err != nil && first == nil {
				first = fmt.Errorf("stop %s: %w", p.name, err)
			}
		} else {
			p.cancel()
		}
		select {
		case <-p.done:
		case <-deadline.Done():
			g.logger.Warn("shutdown timeout, forcing", zap.String("part", p.name), zap.Duration("timeout", g.timeout))
			<-p.done
		}
		if p.err != nil && first == nil && !errors.Is(p.err, context.Canceled) {
			first = fmt.Errorf("%s: %w", p.name, p.err)
		}
		p.cancel()
		g.logger.Info("stopped", zap.String("part", p.name), zap.Duration("took", time.Since(start)))
	}
	return first
}
