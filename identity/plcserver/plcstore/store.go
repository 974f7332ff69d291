package plcstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Entry is one operation of a DID's log.
type Entry struct {
	Seq       int64
	DID       string
	CID       string
	Operation []byte // wire-format JSON
	Nullified bool
	CreatedAt time.Time // millisecond precision
}

// Store is the directory's database. Safe for concurrent use; the caller
// serialises validation and Append per directory.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	migrations, _ := fs.Sub(migrationFiles, "migrations")
	db, err := sqlitedb.Open(ctx, path, migrations, 4)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

const entryCols = "seq, did, cid, operation, nullified, created_at"

func scanEntries(rows *sql.Rows) ([]Entry, error) {
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ms int64
		if err := rows.Scan(&e.Seq, &e.DID, &e.CID, &e.Operation, &e.Nullified, &ms); err != nil {
			return nil, err
		}
		e.CreatedAt = time.UnixMilli(ms).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Log returns the operations of did, oldest first; nullified ones only when
// includeNullified.
func (s *Store) Log(ctx context.Context, did string, includeNullified bool) ([]Entry, error) {
	q := "SELECT " + entryCols + " FROM operations WHERE did = ?"
	if !includeNullified {
		q += " AND nullified = 0"
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY seq", did)
	if err != nil {
		return nil, err
	}
	return scanEntries(rows)
}

// Last returns the newest non-nullified operation of did, or ok=false.
func (s *Store) Last(ctx context.Context, did string) (e Entry, ok bool, err error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+entryCols+" FROM operations WHERE did = ? AND nullified = 0 ORDER BY seq DESC LIMIT 1", did)
	if err != nil {
		return Entry{}, false, err
	}
	es, err := scanEntries(rows)
	if err != nil || len(es) == 0 {
		return Entry{}, false, err
	}
	return es[0], true, nil
}

// Append adds e to its DID's log and marks the operations of that DID whose
// CIDs are in nullify as nullified, in one transaction.
func (s *Store) Append(ctx context.Context, e Entry, nullify []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range nullify {
		if _, err := tx.ExecContext(ctx, "UPDATE operations SET nullified = 1 WHERE did = ? AND cid = ?", e.DID, c); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO operations (did, cid, operation, nullified, created_at) VALUES (?, ?, ?, 0, ?)",
		e.DID, e.CID, e.Operation, e.CreatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("plcstore: append: %w", err)
	}
	return tx.Commit()
}

// Export returns up to count operations (nullified included) accepted after
// the time after (zero: from the start), oldest first.
func (s *Store) Export(ctx context.Context, after time.Time, count int) ([]Entry, error) {
	var from int64 = -1 << 62
	if !after.IsZero() {
		from = after.UnixMilli()
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+entryCols+" FROM operations WHERE created_at > ? ORDER BY created_at, seq LIMIT ?", from, count)
	if err != nil {
		return nil, err
	}
	return scanEntries(rows)
}
