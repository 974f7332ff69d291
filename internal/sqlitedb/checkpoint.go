package sqlitedb

import (
	"context"
	"database/sql"
	"sync"
)

// AutoCheckpointOff is the pragma for Open's extra pragmas that stops SQLite's automatic checkpoint: it runs
// inside the transaction that crosses 1,000 WAL pages, copying the WAL into the database file and fsyncing
// both (milliseconds, inside one commit of many). A Checkpointer runs them in the background instead.
const AutoCheckpointOff = "wal_autocheckpoint(0)"

// Checkpointer runs a PASSIVE WAL checkpoint in a goroutine once enough has been written since the last one.
// A PASSIVE checkpoint never blocks writers or readers; one that cannot finish leaves the rest to the next.
// The last connection to close a database still checkpoints it as usual. Methods are safe on nil (no-ops).
type Checkpointer struct {
	db    *sql.DB
	every int

	mu      sync.Mutex
	pending int
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// NewCheckpointer checkpoints db after every writes of total weight every (the caller's unit: ~1,000 WAL
// pages, SQLite's default interval, is a good target).
func NewCheckpointer(db *sql.DB, every int) *Checkpointer {
	return &Checkpointer{db: db, every: every}
}

// Wrote records committed writes of weight w, and starts a checkpoint when enough have accumulated and none
// is running.
func (c *Checkpointer) Wrote(w int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.pending += w
	start := c.pending >= c.every && !c.running && !c.closed
	if start {
		c.pending, c.running = 0, true
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer c.wg.Done()
		// An error (busy, I/O) leaves the frames in the WAL for the next checkpoint or the close.
		c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
}

// Close waits for a running checkpoint and starts no more: call it before closing the database.
func (c *Checkpointer) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}
