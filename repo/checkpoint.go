package repo

import (
	"context"
	"sync"
)

// Checkpoints run in the background, not inside a commit. SQLite's automatic checkpoint (every 1,000 WAL
// pages) runs in the transaction that crosses the threshold: it copies the WAL into the database file and
// fsyncs both, which put ~5 ms into one commit in ~40 (a quarter of a one-record commit's average latency once
// commits no longer fsync themselves). The repository files are opened with wal_autocheckpoint(0), and after
// enough writes a goroutine runs a PASSIVE checkpoint, which never blocks the writer or readers. The last
// connection to close still checkpoints and removes the WAL, as always.

// checkpointEvery is the write weight (a commit counts 1 plus one per 8 blocks: ~25 WAL pages for a
// one-record commit) after which a background checkpoint starts: about SQLite's default 1,000 pages.
const checkpointEvery = 40

type checkpointer struct {
	mu      sync.Mutex
	pending int  // weight written since the last checkpoint started
	running bool // a checkpoint goroutine is running
	closed  bool
	wg      sync.WaitGroup
}

// wrote records committed writes of weight w and starts a checkpoint when enough have accumulated.
func (r *Repo) wrote(w int) {
	c := &r.ckpt
	c.mu.Lock()
	c.pending += w
	start := c.pending >= checkpointEvery && !c.running && !c.closed
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
		r.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
}

// commitWeight is a commit group's share of checkpointEvery.
func commitWeight(commits []*stagedCommit) int {
	w := 0
	for _, c := range commits {
		w += 1 + len(c.blks)/8
	}
	return w
}

// stopCheckpoints waits for a running checkpoint and prevents new ones (the database is closing).
func (r *Repo) stopCheckpoints() {
	r.ckpt.mu.Lock()
	r.ckpt.closed = true
	r.ckpt.mu.Unlock()
	r.ckpt.wg.Wait()
}
