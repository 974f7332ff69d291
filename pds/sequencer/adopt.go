package sequencer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

// Adopting a log: the takeover of another server's data directory (package takeover) starts this server's
// firehose where the other one stopped. The other log's recent events are kept at their seq (a relay that was
// behind replays them from its cursor) and the head is the other log's last seq, so the next event gets the seq
// after it: relays keep their cursor.

// AdoptedEvent is an event of another server's log. Msg is the firehose message with its seq and time set.
type AdoptedEvent struct {
	Seq  int64
	DID  syntax.DID
	Type string // TypeCommit, TypeSync, TypeIdentity, TypeAccount
	Time time.Time
	Msg  cbg.CBORMarshaler
}

// ErrNotEmpty: Adopt was given a log that already has events.
var ErrNotEmpty = errors.New("sequencer: the log is not empty")

// Adopt creates the log at path (it must be new or empty) with head as the highest seq ever assigned, the
// events in ascending seq order (each at most head), and for each account the rev of its last sequenced commit
// (its repository's head, so start-up has nothing to recover). It returns the number of events stored.
func Adopt(ctx context.Context, path string, head int64, lastRevs map[syntax.DID]string, events iter.Seq2[*AdoptedEvent, error]) (int, error) {
	migrations, _ := fs.Sub(migrationFiles, "migrations")
	db, err := sqlitedb.Open(ctx, path, migrations, 1)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM event) + (SELECT count(*) FROM meta)").Scan(&n); err != nil {
		return 0, err
	}
	if n > 0 {
		return 0, ErrNotEmpty
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, "INSERT INTO event (seq, did, type, time, frame) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	count := 0
	var last int64
	for e, err := range events {
		if err != nil {
			return 0, err
		}
		if e.Seq <= last || e.Seq > head {
			return 0, fmt.Errorf("sequencer: adopted event seq %d out of order (after %d, head %d)", e.Seq, last, head)
		}
		last = e.Seq
		frame, err := EncodeFrame(e.Type, e.Msg)
		if err != nil {
			return 0, fmt.Errorf("sequencer: encoding adopted event %d: %w", e.Seq, err)
		}
		if _, err := ins.ExecContext(ctx, e.Seq, e.DID, e.Type, e.Time.UnixMilli(), frame); err != nil {
			return 0, err
		}
		count++
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('head', ?)", head); err != nil {
		return 0, err
	}
	for did, rev := range lastRevs {
		if _, err := tx.ExecContext(ctx, "INSERT INTO repo_state (did, last_rev, dirty) VALUES (?, ?, 0)", did, rev); err != nil {
			return 0, err
		}
	}
	return count, tx.Commit()
}
