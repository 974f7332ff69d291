package repo

import (
	"database/sql"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

// Checkpoints run in the background, not inside a commit (sqlitedb.Checkpointer): SQLite's automatic
// checkpoint put ~5 ms into one commit in ~40, a quarter of a one-record commit's average latency once commits
// no longer fsync themselves (WriteRequest.DeferSync). Repository files are opened with
// sqlitedb.AutoCheckpointOff.

type checkpointer = sqlitedb.Checkpointer

func newCheckpointer(db *sql.DB) *checkpointer {
	return sqlitedb.NewCheckpointer(db, checkpointEvery, restartFrames)
}

// checkpointEvery is the write weight after which a background checkpoint starts: a commit counts 1 plus one
// per 8 blocks (a one-record commit is ~25 WAL pages), so about SQLite's default of 1,000 pages. (Four times
// that copied hot pages fewer times, but each checkpoint's fsync then delayed the log's fsyncs more: p99 of a
// one-client write 2.6 → 4 ms.)
const checkpointEvery = 40

// restartFrames is how long a repository's WAL may grow (32 MiB of 4 KiB pages) before its writer finishes a
// checkpoint so that it starts over. Its commits are not fsynced (the log makes them durable), so a longer WAL
// costs them little, while finishing a checkpoint costs one commit its two fsyncs (~1 ms): done once in
// several hundred commits, it stays out of the 99th percentile.
const restartFrames = 8192

// commitWeight is a commit group's share of checkpointEvery.
func commitWeight(commits []*stagedCommit) int {
	w := 0
	for _, c := range commits {
		w += 1 + len(c.blks)/8
	}
	return w
}
