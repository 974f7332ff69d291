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

// Subscribe starts a live subscription with a buffer of n events. Everything with seq > Head() at the time of
// the call is delivered (in order) until the subscription closes.
func (s *Sequencer) Subscribe(n int) (*Subscription, int64) {
	sub := &Subscription{C: make(chan *Event, n), done: make(chan struct{}), s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[sub] = struct{}{}
	return sub, s.head
}

// Done is closed when the subscription ends; Err says why.
func (sub *Subscription) Done() <-chan struct{} { return sub.done }
func (sub *Subscription) Err() error            { return sub.err }

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

func (s *Sequencer) publish(events []*Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
