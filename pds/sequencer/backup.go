package sequencer

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

// ChangedSince reads a copy of the log that no sequencer has open (a backup's snapshot): the highest seq ever
// assigned, the accounts with events after seq after, and those marked dirty (writing since the last clean
// start, or a signup in progress). Backups copy only the accounts that changed. complete is false when
// retention already pruned events after after (the caller must then treat every account as changed).
func ChangedSince(ctx context.Context, path string, after int64) (head int64, dids, dirty []syntax.DID, complete bool, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"mode": {"ro"}}.Encode())
	if err != nil {
		return 0, nil, nil, false, err
	}
	defer db.Close()
	var metaHead, maxSeq sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'head'").Scan(&metaHead); err != nil && err != sql.ErrNoRows {
		return 0, nil, nil, false, err
	}
	if err := db.QueryRowContext(ctx, "SELECT max(seq) FROM event").Scan(&maxSeq); err != nil {
		return 0, nil, nil, false, err
	}
	head = max(metaHead.Int64, maxSeq.Int64)
	var oldest sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT min(seq) FROM event").Scan(&oldest); err != nil {
		return 0, nil, nil, false, err
	}
	// Complete when no event after `after` can have been pruned: the oldest kept one is at most after+1, or
	// nothing was assigned since.
	complete = head <= after || (oldest.Valid && oldest.Int64 <= after+1)
	if dids, err = queryDIDs(ctx, db, "SELECT DISTINCT did FROM event WHERE seq > ?", after); err != nil {
		return 0, nil, nil, false, err
	}
	if dirty, err = queryDIDs(ctx, db, "SELECT did FROM repo_state WHERE dirty = 1"); err != nil {
		return 0, nil, nil, false, err
	}
	return head, dids, dirty, complete, nil
}

func queryDIDs(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]syntax.DID, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []syntax.DID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if d, err := syntax.ParseDID(s); err == nil {
			out = append(out, d)
		}
	}
	return out, rows.Err()
}

// Segment is what ExportSince wrote.
type Segment struct {
	Head     int64        // the highest seq ever assigned, as of the export
	Complete bool         // no event after `after` was pruned before the export
	DIDs     []syntax.DID // accounts with events in the segment
	Dirty    []syntax.DID // accounts marked dirty
	Events   int
}

// ExportSince writes to dst (a new SQLite file) what a backup needs of the log at path since seq after, read
// in one transaction (the log may be live): the events after it, the recovery state (repo_state) of their
// accounts and of the dirty ones, and the head. A backup uploads it instead of the whole log; Rebuild applies
// segments to an earlier copy.
func ExportSince(ctx context.Context, path, dst string, after int64) (*Segment, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS seg", dst); err != nil {
		return nil, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE seg")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, q := range []string{
		"CREATE TABLE seg.event (seq INTEGER PRIMARY KEY, did TEXT NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, frame BLOB NOT NULL)",
		"CREATE TABLE seg.repo_state (did TEXT PRIMARY KEY, last_rev TEXT NOT NULL, dirty INTEGER NOT NULL)",
		"CREATE TABLE seg.meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO seg.event SELECT seq, did, type, time, frame FROM main.event WHERE seq > ?", after)
	if err != nil {
		return nil, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `INSERT INTO seg.repo_state SELECT did, last_rev, dirty FROM main.repo_state
		WHERE dirty = 1 OR did IN (SELECT did FROM seg.event)`); err != nil {
		return nil, err
	}
	var metaHead, maxSeq, oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT value FROM main.meta WHERE key = 'head'").Scan(&metaHead); err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT max(seq), min(seq) FROM main.event").Scan(&maxSeq, &oldest); err != nil {
		return nil, err
	}
	seg := &Segment{Head: max(metaHead.Int64, maxSeq.Int64), Events: int(n)}
	seg.Complete = seg.Head <= after || (oldest.Valid && oldest.Int64 <= after+1)
	if _, err := tx.ExecContext(ctx, "INSERT INTO seg.meta (key, value) VALUES ('head', ?)", seg.Head); err != nil {
		return nil, err
	}
	if seg.DIDs, err = queryDIDs(ctx, tx, "SELECT DISTINCT did FROM seg.event"); err != nil {
		return nil, err
	}
	if seg.Dirty, err = queryDIDs(ctx, tx, "SELECT did FROM seg.repo_state WHERE dirty = 1"); err != nil {
		return nil, err
	}
	return seg, tx.Commit()
}

// Rebuild writes the log at path (which must not exist) from base, a copy of a log, and segments of
// ExportSince taken after it, in order: their events, their accounts' recovery state, the head.
func Rebuild(ctx context.Context, path, base string, segments []string) error {
	if err := sqlitedb.CopyFile(base, path); err != nil {
		return err
	}
	migrations, _ := fs.Sub(migrationFiles, "migrations")
	db, err := sqlitedb.Open(ctx, path, migrations, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range segments {
		if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS seg", s); err != nil {
			return err
		}
		err := func() error {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			for _, q := range []string{
				"INSERT OR IGNORE INTO main.event (seq, did, type, time, frame) SELECT seq, did, type, time, frame FROM seg.event",
				`INSERT INTO main.repo_state (did, last_rev, dirty) SELECT did, last_rev, dirty FROM seg.repo_state WHERE true
					ON CONFLICT (did) DO UPDATE SET last_rev = excluded.last_rev, dirty = excluded.dirty`,
				`INSERT INTO main.meta (key, value) SELECT key, value FROM seg.meta WHERE key = 'head' AND true
					ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)`,
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return tx.Commit()
		}()
		conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE seg")
		if err != nil {
			return fmt.Errorf("log segment %s: %w", s, err)
		}
	}
	return nil
}
