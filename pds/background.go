package pds

import (
	"context"
	"sync"
)

// background tracks the server's long-lived goroutines (firehose retention, crawler notifications, websocket
// subscribers) so Close can stop them and wait for them before closing the stores they use.
type background struct {
	mu      sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
	// ctx is canceled with quit: context.AfterFunc on it reacts to the stop without a goroutine per waiter.
	ctx    context.Context
	cancel context.CancelFunc
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{quit: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// Quit is closed when the server stops.
func (b *background) Quit() <-chan struct{} { return b.quit }

// Context is canceled when the server stops (when Quit is closed).
func (b *background) Context() context.Context { return b.ctx }

// enter registers a goroutine; false once the server is stopping (the caller must not start its work).
// Every successful enter must be matched by leave.
func (b *background) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.wg.Add(1)
	return true
}

func (b *background) leave() { b.wg.Done() }

// Go runs fn in a tracked goroutine; fn must return soon after Quit is closed.
func (b *background) Go(fn func()) {
	if !b.enter() {
		return
	}
	go func() {
		defer b.leave()
		fn()
	}()
}

// stop closes Quit and waits for every tracked goroutine to return.
func (b *background) stop() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.quit)
		b.cancel()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
