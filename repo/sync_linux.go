package repo

import (
	"os"

	"golang.org/x/sys/unix"
)

// Sync makes every write to the store's files durable, including the transactions committed with
// WriteRequest.DeferSync: one syncfs(2) of the file system that holds the repositories, however many
// repositories have unsynced writes (a checkpoint per repository would cost two fsyncs each).
func (s *Store) Sync() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
