package pds

import (
	"sync"
)

// background tracks the server's long-lived goroutines (firehose retention, crawler notifications, websocket
// subscribers) so Close can stop them and wait for them before closing the stores they use.
type background struct {
	mu      sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

func newBackground() *background {
	return &background{quit: make(chan struct{})}
}

// Quit is closed when the server stops.
func (b *background) Quit() <-chan struct{} { return b.quit }

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
	}
	b.mu.Unlock()
	b.wg.Wait()
}
