package accountstore

import (
	"container/list"
	"sync"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Every request names an account (by DID or handle), and every write signs with the account's key: the
// accounts in use are kept in memory, with their parsed signing keys. One process owns account.sqlite, so the
// store sees every change: each method that writes the account table calls s.changed(did) (a test checks
// this), which drops the entry. Lookups by email, listings and searches always read SQLite.

// accountCacheSize bounds the cached accounts (~1 KB each with the parsed key).
const accountCacheSize = 4096

// accountCache is an LRU of accounts by DID, with an index handle -> DID.
//
// A fill races with a change: a lookup that read the row before a change committed must not store it after
// the change dropped the entry. gen counts changes; a lookup notes gen before reading SQLite, and its result is
// only stored if no change happened meanwhile.
type accountCache struct {
	mu       sync.Mutex
	max      int
	gen      uint64
	byDID    map[syntax.DID]*list.Element // values are *Account; front = most recently used
	byHandle map[string]syntax.DID
	lru      *list.List
}

func newAccountCache(max int) *accountCache {
	return &accountCache{max: max, byDID: map[syntax.DID]*list.Element{}, byHandle: map[string]syntax.DID{}, lru: list.New()}
}

// generation returns the change counter to pass to put.
func (c *accountCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// getDID returns a copy of the cached account (callers may modify what they get).
func (c *accountCache) getDID(did syntax.DID) (*Account, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(did)
}

func (c *accountCache) getLocked(did syntax.DID) (*Account, bool) {
	e, ok := c.byDID[did]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	a := *e.Value.(*Account)
	return &a, true
}

// getHandle looks up a lower-case handle.
func (c *accountCache) getHandle(handle string) (*Account, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	did, ok := c.byHandle[handle]
	if !ok {
		return nil, false
	}
	a, ok := c.getLocked(did)
	if !ok || a.Handle != handle {
		return nil, false
	}
	return a, true
}

// put stores a copy of a (read from SQLite after generation returned gen) unless a change happened since.
func (c *accountCache) put(a *Account, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if e, ok := c.byDID[a.DID]; ok {
		c.removeLocked(e)
	}
	cp := *a
	c.byDID[a.DID] = c.lru.PushFront(&cp)
	c.byHandle[a.Handle] = a.DID
	for c.lru.Len() > c.max {
		c.removeLocked(c.lru.Back())
	}
}

func (c *accountCache) removeLocked(e *list.Element) {
	a := e.Value.(*Account)
	c.lru.Remove(e)
	delete(c.byDID, a.DID)
	if c.byHandle[a.Handle] == a.DID {
		delete(c.byHandle, a.Handle)
	}
}

// invalidate drops did's entry and fails the fills in flight.
func (c *accountCache) invalidate(did syntax.DID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.byDID[did]; ok {
		c.removeLocked(e)
	}
}

// changed must be called (deferred: it runs after the transaction, committed or not) by every method that
// writes the account table.
func (s *Store) changed(did syntax.DID) { s.cache.invalidate(did) }

// signerMemo holds the parsed signing key of one account row, shared by the copies of a cached Account.
type signerMemo struct {
	once sync.Once
	raw  string // the key bytes it was made for
	key  *atcrypto.PrivateKeyK256
	err  error
}

// Signer returns the account's parsed signing key. Parsing derives the public key, as costly as a signature:
// accounts read from the store parse it once per cached row.
func (a *Account) Signer() (*atcrypto.PrivateKeyK256, error) {
	m := a.signer
	if m == nil || m.raw != string(a.SigningKey) { // built by hand, or its key bytes replaced
		return atcrypto.ParsePrivateBytesK256(a.SigningKey)
	}
	m.once.Do(func() { m.key, m.err = atcrypto.ParsePrivateBytesK256(a.SigningKey) })
	return m.key, m.err
}
