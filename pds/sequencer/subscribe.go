package sequencer

import (
	"errors"
	"sync"
)

// ErrTooSlow closes a subscription whose buffer overflowed.
var ErrTooSlow = errors.New("consumer too slow")

// idleQueueCap is the largest queue a subscription keeps between bursts; a larger one (a subscriber that fell
// behind) is dropped once taken, so a thousand idle subscribers hold no burst-sized arrays.
const idleQueueCap = 64

// Subscription receives live events as they become durable. A subscriber that lets its buffer fill is closed
// with ErrTooSlow instead of slowing the writer or other subscribers.
//
// Events wait in a queue that grows on demand up to the buffer size (a subscriber that keeps up holds a few
// pointers, not a buffer-sized channel), and the subscriber is woken once per stored batch, not per event.
type Subscription struct {
	mu      sync.Mutex
	pending []*Event // published, not yet taken
	limit   int
	ready   chan struct{} // a signal is pending when events are

	once sync.Once
	err  error
	done chan struct{}
	s    *Sequencer
}

// Subscribe starts a live subscription with a buffer of n events and returns it with the head at that
// instant: every event with seq > head is delivered (Ready, Take), in order and exactly once, until the
// subscription closes (Unsubscribe, ErrTooSlow, or ErrClosed when the sequencer closes); none with seq <= head
// is.
func (s *Sequencer) Subscribe(n int) (*Subscription, int64) {
	sub := &Subscription{limit: max(n, 1), ready: make(chan struct{}, 1), done: make(chan struct{}), s: s}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosing {
		sub.close(ErrClosed)
	} else {
		s.subs[sub] = struct{}{}
	}
	return sub, s.head
}

// Ready receives a signal when events are pending; Take them. One signal may stand for several batches, and
// a signal may find nothing left to take.
func (sub *Subscription) Ready() <-chan struct{} { return sub.ready }

// Take appends the pending events to dst, in seq order, and returns it.
func (sub *Subscription) Take(dst []*Event) []*Event {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	dst = append(dst, sub.pending...)
	if cap(sub.pending) > idleQueueCap {
		sub.pending = nil
	} else {
		clear(sub.pending)
		sub.pending = sub.pending[:0]
	}
	return dst
}

// Pending is the number of events waiting to be taken.
func (sub *Subscription) Pending() int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.pending)
}

// Done is closed when the subscription ends; Err then says why (nil after Unsubscribe).
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// Err is why the subscription ended; only meaningful once Done is closed.
func (sub *Subscription) Err() error { return sub.err }

// Unsubscribe ends the subscription.
func (sub *Subscription) Unsubscribe() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
	sub.close(nil)
}

func (sub *Subscription) close(err error) {
	sub.once.Do(func() {
		sub.err = err
		close(sub.done)
		sub.mu.Lock()
		sub.pending = nil // never taken now: do not pin the frames
		sub.mu.Unlock()
	})
}

// push queues events for the subscriber; false when they do not fit in its buffer. A subscriber that has
// taken everything is never too slow, even for a stored batch larger than its buffer.
func (sub *Subscription) push(events []*Event) bool {
	sub.mu.Lock()
	ok := len(sub.pending) == 0 || len(sub.pending)+len(events) <= sub.limit
	if ok {
		sub.pending = append(sub.pending, events...)
	}
	sub.mu.Unlock()
	if ok {
		select {
		case sub.ready <- struct{}{}:
		default: // a signal is already pending
		}
	}
	return ok
}

// Notify registers ch to receive a non-blocking signal after every stored batch of events (for work that
// follows activity, like telling relays to crawl). A full ch means a signal is already pending.
func (s *Sequencer) Notify(ch chan<- struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = append(s.watch, ch)
}

// Subscribers is the number of live subscriptions.
func (s *Sequencer) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// publishLocked fans a stored batch of events out without ever blocking: a subscriber whose buffer cannot
// take the batch is dropped with ErrTooSlow. Caller holds s.mu.
func (s *Sequencer) publishLocked(events []*Event) {
	if len(events) == 0 {
		return
	}
	for _, ch := range s.watch {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for sub := range s.subs {
		if !sub.push(events) {
			delete(s.subs, sub)
			sub.close(ErrTooSlow)
			if s.metrics != nil {
				s.metrics.SlowConsumer()
			}
		}
	}
}
