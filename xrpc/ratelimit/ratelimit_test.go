package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestFixedWindow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New("test", 5, time.Minute)
	l.Now = func() time.Time { return now }
	for i := 1; i <= 5; i++ {
		st := l.Consume("a", 1)
		if st.Exceeded || st.Remaining != 5-i || st.Limit != 5 || !st.Reset.Equal(now.Add(time.Minute)) {
			t.Fatalf("request %d: %+v", i, st)
		}
	}
	if st := l.Consume("a", 1); !st.Exceeded || st.Remaining != 0 {
		t.Fatalf("6th request: %+v", st)
	}
	// Other keys have their own windows.
	if st := l.Consume("b", 3); st.Exceeded || st.Remaining != 2 {
		t.Fatalf("key b: %+v", st)
	}
	// Points: 3 more on b exceeds.
	if st := l.Consume("b", 3); !st.Exceeded {
		t.Fatalf("key b over: %+v", st)
	}
	// The window ends a minute after its first request.
	now = now.Add(59 * time.Second)
	if st := l.Consume("a", 1); !st.Exceeded {
		t.Fatal("a reset early")
	}
	now = now.Add(time.Second)
	if st := l.Consume("a", 1); st.Exceeded || st.Remaining != 4 || !st.Reset.Equal(now.Add(time.Minute)) {
		t.Fatalf("after the window: %+v", st)
	}
	l.Reset("b")
	if st := l.Consume("b", 1); st.Exceeded || st.Remaining != 4 {
		t.Fatalf("after Reset: %+v", st)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New("test", 10, time.Minute)
	l.MaxKeys = 1000
	l.Now = func() time.Time { return now }
	for i := range 100_000 {
		l.Consume(fmt.Sprint("k", i), 1)
		if l.Len() > 1000 {
			t.Fatalf("%d keys held after %d distinct keys", l.Len(), i+1)
		}
	}
	// Expired windows are dropped before live ones.
	l2 := New("test", 10, time.Minute)
	l2.MaxKeys = 10
	l2.Now = func() time.Time { return now }
	for i := range 9 {
		l2.Consume(fmt.Sprint("old", i), 1)
	}
	now = now.Add(2 * time.Minute)
	l2.Consume("live", 5)
	l2.Consume("new", 1) // the limiter is full (10): the 9 expired keys go, "live" stays
	if st := l2.Consume("live", 5); !(st.Remaining == 0 && !st.Exceeded) {
		t.Fatalf("live key lost its count: %+v", st)
	}
	if l2.Len() != 2 {
		t.Fatalf("len %d, want 2", l2.Len())
	}
}

func TestTightestAndHeaders(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := Status{Limit: 100, Remaining: 50, Reset: now.Add(time.Hour), Window: time.Hour}
	b := Status{Limit: 30, Remaining: 3, Reset: now.Add(5 * time.Minute), Window: 5 * time.Minute}
	c := Status{Limit: 300, Remaining: 0, Reset: now.Add(90 * time.Second), Window: 24 * time.Hour, Exceeded: true}
	if got, _ := Tightest(a, b); got != b {
		t.Fatalf("tightest: %+v", got)
	}
	if got, _ := Tightest(a, c, b); got != c {
		t.Fatalf("exceeded first: %+v", got)
	}
	if _, ok := Tightest(); ok {
		t.Fatal("empty Tightest found something")
	}
	h := c.Headers(now)
	want := map[string]string{"RateLimit-Limit": "300", "RateLimit-Remaining": "0", "RateLimit-Reset": "1700000090",
		"RateLimit-Policy": "300;w=86400", "Retry-After": "90"}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	if _, ok := b.Headers(now)["Retry-After"]; ok {
		t.Error("Retry-After on a request that was allowed")
	}
}
