package sequencer

import (
	"errors"
	"sync"
)

// ErrTooSlow closes a subscription whose buffer overflowed.
var ErrTooSlow = errors.New("consumer too slow")

// Subscription receives live events as they become durable. A subscriber that lets its buffer fill is closed
// with ErrTooSlow instead of slowing the writer or other subscribers.
type Subscription struct {
	C    chan *Event
	once sync.Once
	err  error
	done chan struct{}
	s    *Sequencer
}

// Subscribe starts a live subscription with a buffer of n events and returns it with the head at that
// instant: every event with seq > head is delivered on C, in order and exactly once, until the subscription
// closes (Unsubscribe, ErrTooSlow, or ErrClosed when the sequencer closes); none with seq <= head is.
func (s *Sequencer) Subscribe(n int) (*Subscription, int64) {
	sub := &Subscription{C: make(chan *Event, n), done: make(chan struct{}), s: s}
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
	})
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

// publishLocked fans events out without ever blocking: a subscriber whose buffer is full is dropped with
// ErrTooSlow. Caller holds s.mu.
func (s *Sequencer) publishLocked(events []*Event) {
	for _, ch := range s.watch {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for sub := range s.subs {
		for _, e := range events {
			select {
			case sub.C <- e:
			default:
				delete(s.subs, sub)
				sub.close(ErrTooSlow)
			}
			if _, ok := s.subs[sub]; !ok {
				break
			}
		}
	}
}
