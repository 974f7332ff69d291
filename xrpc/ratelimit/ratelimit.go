// Package ratelimit counts requests in fixed windows per key, in memory, as the reference PDS's rate limiter
// (rate-limiter-flexible's memory limiter): a key's window starts at its first request and lasts the limit's
// duration; every request in it consumes points; past the limit requests are refused until the window ends.
//
// Memory is bounded: a limiter holds at most MaxKeys keys. Expired windows are dropped first; if a limiter is
// still full (a flood of distinct keys), arbitrary live keys are dropped, which forgets their counts (fails
// open for those keys) rather than growing without bound.
package ratelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxKeys bounds each limiter's memory (a key costs about 100 bytes).
const DefaultMaxKeys = 100_000

// Limiter is one limit: Points per Window for each key.
type Limiter struct {
	Name    string
	Points  int
	Window  time.Duration
	MaxKeys int
	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	end  time.Time // the window's end
	used int
}

// New returns a limiter of points per window.
func New(name string, points int, window time.Duration) *Limiter {
	return &Limiter{Name: name, Points: points, Window: window, MaxKeys: DefaultMaxKeys}
}

// Status is a limiter's state for one key after a request.
type Status struct {
	Limit     int
	Remaining int
	Reset     time.Time // when the key's window ends
	Window    time.Duration
	Exceeded  bool
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Consume takes points for key and reports the key's state; Exceeded when the window's points are used up
// (the refused request's points still count, as in the reference).
func (l *Limiter) Consume(key string, points int) Status {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[string]*entry{}
	}
	e := l.entries[key]
	if e == nil || !now.Before(e.end) {
		if e == nil {
			l.makeRoom(now)
		}
		e = &entry{end: now.Add(l.Window)}
		l.entries[key] = e
	}
	e.used += points
	return Status{
		Limit:     l.Points,
		Remaining: max(0, l.Points-e.used),
		Reset:     e.end,
		Window:    l.Window,
		Exceeded:  e.used > l.Points,
	}
}

// Reset forgets key's window.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// makeRoom runs before a new key is added to a full limiter: expired windows go first, then, if that freed less
// than a tenth, arbitrary keys (map order) until a tenth is free, so the sweep's cost is amortized.
func (l *Limiter) makeRoom(now time.Time) {
	maxKeys := l.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if len(l.entries) < maxKeys {
		return
	}
	for k, e := range l.entries {
		if !now.Before(e.end) {
			delete(l.entries, k)
		}
	}
	target := maxKeys - max(1, maxKeys/10)
	for k := range l.entries {
		if len(l.entries) <= target {
			break
		}
		delete(l.entries, k)
	}
}

// Tightest returns the status with the fewest remaining points (an exceeded one first).
func Tightest(statuses ...Status) (Status, bool) {
	var best Status
	found := false
	for _, s := range statuses {
		if !found || (s.Exceeded && !best.Exceeded) || (s.Exceeded == best.Exceeded && s.Remaining < best.Remaining) {
			best, found = s, true
		}
	}
	return best, found
}

// Headers are the response headers for a status, as the reference writes them: RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset (Unix seconds), RateLimit-Policy ("<points>;w=<seconds>"), and
// Retry-After (seconds) when the limit is exceeded.
func (s Status) Headers(now time.Time) map[string]string {
	h := map[string]string{
		"RateLimit-Limit":               strconv.Itoa(s.Limit),
		"RateLimit-Remaining":           strconv.Itoa(s.Remaining),
		"RateLimit-Reset":               strconv.FormatInt(s.Reset.Unix(), 10),
		"RateLimit-Policy":              fmt.Sprintf("%d;w=%d", s.Limit, int64(s.Window/time.Second)),
		"Access-Control-Expose-Headers": "RateLimit-Limit, RateLimit-Reset, RateLimit-Remaining, RateLimit-Policy",
	}
	if s.Exceeded {
		secs := int64((s.Reset.Sub(now) + time.Second - 1) / time.Second)
		h["Retry-After"] = strconv.FormatInt(max(secs, 0), 10)
		h["Access-Control-Expose-Headers"] += ", Retry-After"
	}
	return h
}

// SetHeaders writes Headers onto h.
func (s Status) SetHeaders(h http.Header, now time.Time) {
	for k, v := range s.Headers(now) {
		h.Set(k, v)
	}
}
