// Package background tracks a server's long-lived goroutines (background loops, websocket subscribers) so
// that stopping the server can end them and wait for them before the stores they use are closed.
package background

import (
	"context"
	"sync"
)

// Group is the set of a server's tracked goroutines.
type Group struct {
	mu      sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
	// ctx is canceled with quit: context.AfterFunc on it reacts to the stop without a goroutine per waiter.
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a running group.
func New() *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{quit: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// Quit is closed when the server stops.
func (b *Group) Quit() <-chan struct{} { return b.quit }

// Context is canceled when the server stops (when Quit is closed).
func (b *Group) Context() context.Context { return b.ctx }

// Enter registers a goroutine; false once the server is stopping (the caller must not start its work).
// Every successful enter must be matched by Leave.
func (b *Group) Enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.wg.Add(1)
	return true
}

// Leave unregisters a goroutine registered by Enter.
func (b *Group) Leave() { b.wg.Done() }

// Go runs fn in a tracked goroutine; fn must return soon after Quit is closed.
func (b *Group) Go(fn func()) {
	if !b.Enter() {
		return
	}
	go func() {
		defer b.Leave()
		fn()
	}()
}

// Stop closes Quit and waits for every tracked goroutine to return.
func (b *Group) Stop() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.quit)
		b.cancel()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
