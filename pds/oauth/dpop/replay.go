package dpop

import (
	"sync"
	"time"
)

// DefaultReplayCapacity bounds the in-memory replay cache. With the default acceptance window (about 3 min) that
// is over 500 fresh proofs a second before the cache fills.
const DefaultReplayCapacity = 100_000

// ReplayCache remembers single-use identifiers (DPoP jti, client-assertion jti) until they expire. It is in
// memory, bounded and safe for concurrent use. When it is full of unexpired entries it refuses new ones (Seen
// reports true): failing closed keeps replays out at the cost of refusing requests under a flood.
type ReplayCache struct {
	mu        sync.Mutex
	entries   map[string]time.Time
	capacity  int
	lastSweep time.Time
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// NewReplayCache returns a cache holding at most capacity entries (DefaultReplayCapacity when <= 0).
func NewReplayCache(capacity int) *ReplayCache {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &ReplayCache{entries: make(map[string]time.Time), capacity: capacity}
}

func (c *ReplayCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Seen records key until exp and reports whether it was already recorded and unexpired (or the cache is full).
// Its signature fits client.Client.Authenticate's jtiSeen callback.
func (c *ReplayCache) Seen(key string, exp time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if e, ok := c.entries[key]; ok && now.Before(e) {
		return true
	}
	if len(c.entries) >= c.capacity || now.Sub(c.lastSweep) > 30*time.Second {
		c.sweep(now)
	}
	if len(c.entries) >= c.capacity {
		return true
	}
	c.entries[key] = exp
	return false
}

func (c *ReplayCache) sweep(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e) {
			delete(c.entries, k)
		}
	}
	c.lastSweep = now
}

// Len is the number of entries held, expired ones included until the next sweep.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
