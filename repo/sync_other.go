//go:build !linux

package repo

import "syscall"

// Sync makes every write to the store's files durable, including the transactions committed with
// WriteRequest.DeferSync (sync(2): the whole system's, where syncfs(2) is missing).
func (s *Store) Sync() error {
	syscall.Sync()
	return nil
}
