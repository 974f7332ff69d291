// Package blobgc is the durable work list of blob garbage collection: blobgc.sqlite holds the accounts that may
// have blobs to delete (unreferenced by any record, or temporary uploads that expired) and when the first one is
// due. Blob metadata is per account (package repo), so without this list finding the work would mean opening every
// account's database.
//
// Marks are written before the repository change that creates the work (an upload, a commit that drops the last
// reference to a blob), so a crash can not lose work; a spurious mark only costs the collector a look.
package blobgc

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Queue is the list of accounts with pending blob collection.
type Queue struct{ db *sql.DB }

// Entry is one account with work due.
type Entry struct {
	DID syntax.DID
	Due time.Time
	Gen int64 // hand back to Done
}

// Open opens (creating) the queue at path.
func Open(ctx context.Context, path string) (*Queue, error) {
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(ctx, path, migrations, 2)
	if err != nil {
		return nil, err
	}
	return &Queue{db: db}, nil
}

// Close closes the database.
func (q *Queue) Close() error { return q.db.Close() }

// Mark records, durably, that did may have blob work due at due (the earliest mark wins).
func (q *Queue) Mark(ctx context.Context, did syntax.DID, due time.Time) error {
	_, err := q.db.ExecContext(ctx, `INSERT INTO pending (did, due_at, gen) VALUES (?, ?, 1)
		ON CONFLICT (did) DO UPDATE SET due_at = min(due_at, excluded.due_at), gen = gen + 1`, did, due.UnixMilli())
	return err
}

// Due returns up to limit accounts whose work is due at now, earliest first.
func (q *Queue) Due(ctx context.Context, now time.Time, limit int) ([]Entry, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT did, due_at, gen FROM pending WHERE due_at <= ? ORDER BY due_at LIMIT ?", now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var due int64
		if err := rows.Scan(&e.DID, &due, &e.Gen); err != nil {
			return nil, err
		}
		e.Due = time.UnixMilli(due)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Done records the outcome of collecting e's account: with more, the next work is due at next; without, the
// account is removed from the list. Either only if nobody marked the account since e was read (otherwise the
// row stays as that mark left it, and the account is looked at again).
func (q *Queue) Done(ctx context.Context, e Entry, next time.Time, more bool) error {
	var err error
	if more {
		_, err = q.db.ExecContext(ctx, "UPDATE pending SET due_at = ? WHERE did = ? AND gen = ?", next.UnixMilli(), e.DID, e.Gen)
	} else {
		_, err = q.db.ExecContext(ctx, "DELETE FROM pending WHERE did = ? AND gen = ?", e.DID, e.Gen)
	}
	return err
}

// Postpone moves e's account's due time to at least next, whatever marked it meanwhile (the collection failed:
// retry later, without spinning).
func (q *Queue) Postpone(ctx context.Context, did syntax.DID, next time.Time) error {
	_, err := q.db.ExecContext(ctx, "UPDATE pending SET due_at = max(due_at, ?) WHERE did = ?", next.UnixMilli(), did)
	return err
}

// NextDue returns the earliest due time (ok false: the list is empty).
func (q *Queue) NextDue(ctx context.Context) (time.Time, bool, error) {
	var due sql.NullInt64
	err := q.db.QueryRowContext(ctx, "SELECT min(due_at) FROM pending").Scan(&due)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !due.Valid) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(due.Int64), true, nil
}
