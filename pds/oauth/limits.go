package oauth

import (
	"sync"
	"time"
)

// limiter counts attempts per key in fixed windows (sign-in only: small, in memory, per process).
type limiter struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

const limiterMaxKeys = 100_000

func newLimiter() *limiter { return &limiter{m: map[string]*window{}} }

// allow counts one attempt for key and reports whether it is within n per d.
func (l *limiter) allow(key string, n int, d time.Duration, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil || now.Sub(w.start) >= d {
		if len(l.m) >= limiterMaxKeys {
			l.sweep(now)
		}
		w = &window{start: now}
		l.m[key] = w
	}
	w.n++
	return w.n <= n
}

// sweep drops windows older than a day (the longest window), or everything if that frees nothing.
func (l *limiter) sweep(now time.Time) {
	for k, w := range l.m {
		if now.Sub(w.start) >= 24*time.Hour {
			delete(l.m, k)
		}
	}
	if len(l.m) >= limiterMaxKeys {
		l.m = map[string]*window{}
	}
}

// liveCache remembers, for a short time, that an access token's session was live, so every XRPC call does not
// read the store; every revocation through the provider invalidates it at once.
type liveCache struct {
	mu sync.Mutex
	m  map[string]liveEntry // access token jti -> entry
}

type liveEntry struct {
	did       string
	sessionID string
	until     time.Time
}

const (
	liveCacheTTL = 30 * time.Second // bounds staleness for revocations made outside the provider
	liveCacheMax = 50_000
)

func newLiveCache() *liveCache { return &liveCache{m: map[string]liveEntry{}} }

func (c *liveCache) get(tokenID string, now time.Time) (liveEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tokenID]
	if !ok || now.After(e.until) {
		return liveEntry{}, false
	}
	return e, true
}

func (c *liveCache) put(tokenID string, e liveEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= liveCacheMax {
		c.m = map[string]liveEntry{}
	}
	c.m[tokenID] = e
}

func (c *liveCache) drop(tokenIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range tokenIDs {
		delete(c.m, id)
	}
}

func (c *liveCache) dropDID(did string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.did == did {
			delete(c.m, k)
		}
	}
}

func (c *liveCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]liveEntry{}
}
