// Package keyedmutex is a mutex per key (an account, a blob) whose entries live only while the key's lock is
// held or awaited, so a server with millions of keys keeps only the ones in use.
package keyedmutex

import "sync"

// Map is a set of mutexes by key. The zero value is ready to use.
type Map[K comparable] struct {
	mu sync.Mutex
	m  map[K]*entry
}

type entry struct {
	sync.Mutex
	users int // holders and waiters
}

// Lock takes key's mutex, waiting for it; unlock releases it.
func (k *Map[K]) Lock(key K) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[K]*entry{}
	}
	e := k.m[key]
	if e == nil {
		e = &entry{}
		k.m[key] = e
	}
	e.users++
	k.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// Len is the number of keys held or awaited.
func (k *Map[K]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
