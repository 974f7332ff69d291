package accountstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// SetAccountTakedown takes an account down (ref != "") or restores it (ref == ""). A takedown revokes every
// refresh token of the account in the same transaction.
func (s *Store) SetAccountTakedown(ctx context.Context, did syntax.DID, ref string) error {
	defer s.changed(did)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE account SET takedown_ref = ? WHERE did = ?", nullString(ref), did)
	if err != nil {
		return err
	}
	if err := oneRow(res); err != nil {
		return err
	}
	if ref != "" {
		if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_token WHERE did = ?", did); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// TakendownAccounts lists the DIDs of every taken-down account (a short list; the server caches it).
func (s *Store) TakendownAccounts(ctx context.Context) ([]syntax.DID, error) {
	return s.dids(ctx, "SELECT did FROM account WHERE takedown_ref IS NOT NULL")
}

func (s *Store) dids(ctx context.Context, q string, args ...any) ([]syntax.DID, error) {
	return queryRows(ctx, s.db, func(row rowScanner) (syntax.DID, error) {
		var v syntax.DID
		err := row.Scan(&v)
		return v, err
	}, q, args...)
}

// Takedown is a moderation takedown of one record or blob.
type Takedown struct {
	DID syntax.DID
	URI string // records
	CID string
	Ref string
}

// SetRecordTakedown hides a record (ref != "") or shows it again (ref == "").
func (s *Store) SetRecordTakedown(ctx context.Context, did syntax.DID, uri, cid, ref string) error {
	if ref == "" {
		_, err := s.db.ExecContext(ctx, "DELETE FROM record_takedown WHERE uri = ?", uri)
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO record_takedown (uri, did, cid, takedown_ref, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, takedown_ref = excluded.takedown_ref`,
		uri, did, cid, ref, s.clock().UTC().Format(timeFormat))
	if err != nil && isForeignKey(err) {
		return ErrNotFound
	}
	return err
}

// RecordTakedowns lists every record takedown (cached by the server).
func (s *Store) RecordTakedowns(ctx context.Context) ([]Takedown, error) {
	return queryRows(ctx, s.db, func(row rowScanner) (Takedown, error) {
		var t Takedown
		err := row.Scan(&t.DID, &t.URI, &t.CID, &t.Ref)
		return t, err
	}, "SELECT did, uri, cid, takedown_ref FROM record_takedown")
}

// SetBlobTakedown records a blob takedown (ref != "") or removes it (ref == "").
func (s *Store) SetBlobTakedown(ctx context.Context, did syntax.DID, cid, ref string) error {
	if ref == "" {
		_, err := s.db.ExecContext(ctx, "DELETE FROM blob_takedown WHERE did = ? AND cid = ?", did, cid)
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO blob_takedown (did, cid, takedown_ref, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (did, cid) DO UPDATE SET takedown_ref = excluded.takedown_ref`,
		did, cid, ref, s.clock().UTC().Format(timeFormat))
	if err != nil && isForeignKey(err) {
		return ErrNotFound
	}
	return err
}

// BlobTakedown returns a blob's takedown ref, or ErrNotFound when it is not taken down.
func (s *Store) BlobTakedown(ctx context.Context, did syntax.DID, cid string) (string, error) {
	var ref string
	err := s.db.QueryRowContext(ctx, "SELECT takedown_ref FROM blob_takedown WHERE did = ? AND cid = ?", did, cid).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return ref, err
}

func isForeignKey(err error) bool {
	return strings.Contains(err.Error(), "FOREIGN KEY")
}
