package sequencer

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// subReader reads a subscription one event at a time.
type subReader struct {
	sub *Subscription
	buf []*Event
}

// next returns the next event, or nil if none comes within timeout (0: only what is pending now).
func (r *subReader) next(timeout time.Duration) *Event {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(r.buf) == 0 {
		if r.buf = r.sub.Take(r.buf); len(r.buf) > 0 {
			break
		}
		if timeout == 0 {
			return nil
		}
		select {
		case <-r.sub.Ready():
		case <-deadline.C:
			return nil
		}
	}
	e := r.buf[0]
	r.buf = r.buf[1:]
	return e
}

// TestSubscriptionQueue: one wake-up per published batch at most, Take gets everything pending in order, a
// subscriber that has taken everything accepts even a batch larger than its buffer, and one that lets events
// pile up past its buffer is dropped with ErrTooSlow.
func TestSubscriptionQueue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "seq.sqlite"), Options{})
	sub, head := s.Subscribe(4)
	seq := head
	publish := func(n int) {
		events := make([]*Event, n)
		for i := range events {
			seq++
			events[i] = &Event{Seq: seq}
		}
		s.mu.Lock()
		s.publishLocked(events)
		s.mu.Unlock()
	}
	take := func(want int) {
		t.Helper()
		got := sub.Take(nil)
		if len(got) != want {
			t.Fatalf("took %d events, want %d", len(got), want)
		}
		for _, e := range got {
			head++
			if e.Seq != head {
				t.Fatalf("seq %d, want %d", e.Seq, head)
			}
		}
	}
	select {
	case <-sub.Ready():
		t.Fatal("ready before any event")
	default:
	}
	publish(10) // larger than the buffer, but nothing is pending
	<-sub.Ready()
	take(10)
	publish(1)
	publish(3) // 4 pending: full, not over
	<-sub.Ready()
	select {
	case <-sub.Ready():
		t.Fatal("two signals for pending events")
	default:
	}
	if n := sub.Pending(); n != 4 {
		t.Fatalf("%d pending, want 4", n)
	}
	take(4)
	take(0)
	select {
	case <-sub.Done():
		t.Fatalf("subscriber ended: %v", sub.Err())
	default:
	}
	publish(2)
	publish(3) // 5 pending > 4
	select {
	case <-sub.Done():
		if !errors.Is(sub.Err(), ErrTooSlow) {
			t.Fatalf("ended with %v", sub.Err())
		}
	default:
		t.Fatal("subscriber over its buffer not dropped")
	}
	if s.Subscribers() != 0 {
		t.Fatalf("%d subscribers", s.Subscribers())
	}
}
