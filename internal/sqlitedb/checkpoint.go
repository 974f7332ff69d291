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

// finishFrames is how few frames a background pass must have copied to end the passes: the writer then has
// fewer than that to copy itself (Wrote), with the two fsyncs of any checkpoint.
const finishFrames = 64

// maxPasses bounds the background passes of one checkpoint. Each copies what the writer added during the
// previous one, so they shrink quickly; after the last, the writer copies whatever is left, so that the WAL is
// bounded even when the writer outpaces the checkpoint.
const maxPasses = 4

// Checkpointer runs WAL checkpoints in a goroutine once enough has been written since the last one, and keeps
// the WAL file from growing without bound.
//
// A PASSIVE checkpoint never blocks writers or readers; one that cannot finish leaves the rest to the next.
// But SQLite starts the WAL over from its beginning only when a write transaction begins with every frame
// already copied into the database, and a background checkpoint never sees that while a writer keeps
// committing: its copy ends behind the frames written meanwhile. Under steady writes the WAL then grew
// forever (hundreds of MB in a 10 s benchmark) and each commit's fsync had to extend the file, which costs
// twice as much as overwriting it. So once the WAL is due to start over (restartFrames), the background
// passes copy all but a few frames, and the writer copies the rest itself, between two of its transactions
// (Wrote): its next transaction then starts the WAL over. Otherwise a checkpoint is one background pass. Only
// a reader holding an old snapshot through all of it keeps the WAL growing, until the next checkpoint.
//
// The last connection to close a database still checkpoints it as usual. Methods are safe on nil (no-ops).
type Checkpointer struct {
	db            *sql.DB
	every         int
	restartFrames int

	mu      sync.Mutex
	pending int
	running bool
	closed  bool
	finish  bool // a restart is due and the background passes are over: Wrote copies what they left
	wg      sync.WaitGroup
}

// NewCheckpointer checkpoints db after every writes of total weight every (the caller's unit: ~1,000 WAL
// pages, SQLite's default interval, is a good target). Once the WAL holds restartFrames frames, the writer
// finishes the next checkpoint itself so that the WAL starts over: that costs its next transaction the
// checkpoint's two fsyncs (~1 ms), so a database whose commits are not fsynced anyway may let its WAL grow
// longer than one whose every commit extends it with an fsync. 0 starts it over after every checkpoint.
func NewCheckpointer(db *sql.DB, every, restartFrames int) *Checkpointer {
	return &Checkpointer{db: db, every: every, restartFrames: restartFrames}
}

// Wrote records committed writes of weight w, and starts a checkpoint when enough have accumulated and none
// is running. The database's writer calls it after each of its transactions, before beginning the next:
// when a checkpoint that is to restart the WAL has left only a few frames, Wrote copies them there and then,
// so that the writer's next transaction starts the WAL over.
func (c *Checkpointer) Wrote(w int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	finish := c.finish && !c.running && !c.closed
	c.finish = false
	c.pending += w
	start := c.pending >= c.every && !c.running && !c.closed
	if start {
		c.pending, c.running = 0, true
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if finish {
		// An error (busy: a reader's snapshot still needs frames) leaves them to the next checkpoint.
		c.checkpoint()
	}
	if !start {
		return
	}
	go func() {
		defer c.wg.Done()
		finish := false
		for pass, last := 0, -1; pass < maxPasses; pass++ {
			// An error (busy, I/O) leaves the frames in the WAL for the next checkpoint or the close.
			frames, err := c.checkpoint()
			if err != nil {
				finish = false
				break
			}
			finish = frames >= c.restartFrames
			if !finish {
				break // the WAL may grow on: one pass, as a plain background checkpoint
			}
			if last >= 0 && frames-last <= finishFrames {
				break // this pass had little to copy: the writer added even less meanwhile
			}
			last = frames
		}
		c.mu.Lock()
		c.running = false
		c.finish = finish
		c.mu.Unlock()
	}()
}

// checkpoint runs one PASSIVE checkpoint and returns the size of the WAL, in frames, that it saw: it copies
// them all unless a reader's snapshot still needs some.
func (c *Checkpointer) checkpoint() (frames int, err error) {
	var busy, copied int
	err = c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, err
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
