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

func newCheckpointer(db *sql.DB) *checkpointer { return sqlitedb.NewCheckpointer(db, checkpointEvery) }

// checkpointEvery is the write weight after which a background checkpoint starts: a commit counts 1 plus one
// per 8 blocks (a one-record commit is ~25 WAL pages), so about SQLite's default of 1,000 pages.
const checkpointEvery = 40

// commitWeight is a commit group's share of checkpointEvery.
func commitWeight(commits []*stagedCommit) int {
	w := 0
	for _, c := range commits {
		w += 1 + len(c.blks)/8
	}
	return w
}
