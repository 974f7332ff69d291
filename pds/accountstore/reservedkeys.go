package accountstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// ReservedKey is a repo signing key held for an account that does not exist yet (reserveSigningKey).
type ReservedKey struct {
	KeyDID     string     // the public key as a did:key
	DID        syntax.DID // the account it is reserved for; "" when unbound
	PrivateKey []byte     // K256 private key bytes
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// ReserveSigningKey stores k, unless k.DID already has a live reservation: then that one is returned (a DID
// keeps its key across repeated calls, as the reference's does) and k is dropped. Expired reservations are
// deleted on the way, so the table never holds more than a lifetime's worth.
func (s *Store) ReserveSigningKey(ctx context.Context, k ReservedKey) (*ReservedKey, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := s.clock().UnixMilli()
	if _, err := tx.ExecContext(ctx, "DELETE FROM reserved_signing_key WHERE expires_at <= ?", now); err != nil {
		return nil, err
	}
	if k.DID != "" {
		got, err := scanReservedKey(tx.QueryRowContext(ctx, "SELECT "+reservedKeyColumns+" FROM reserved_signing_key WHERE did = ?", k.DID))
		if err == nil {
			return got, tx.Commit()
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	var did any
	if k.DID != "" {
		did = k.DID.String()
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO reserved_signing_key ("+reservedKeyColumns+") VALUES (?, ?, ?, ?, ?)",
		k.KeyDID, did, k.PrivateKey, k.CreatedAt.UnixMilli(), k.ExpiresAt.UnixMilli()); err != nil {
		return nil, err
	}
	return &k, tx.Commit()
}

// ReservedSigningKey finds the live reservation for did (when did is set), else the unbound one of keyDID (a key
// reserved for another DID is never handed out by its did:key). ErrNotFound when there is none.
func (s *Store) ReservedSigningKey(ctx context.Context, did syntax.DID, keyDID string) (*ReservedKey, error) {
	now := s.clock().UnixMilli()
	if did != "" {
		k, err := scanReservedKey(s.db.QueryRowContext(ctx, "SELECT "+reservedKeyColumns+
			" FROM reserved_signing_key WHERE did = ? AND expires_at > ?", did, now))
		if !errors.Is(err, ErrNotFound) {
			return k, err
		}
	}
	if keyDID == "" {
		return nil, ErrNotFound
	}
	return scanReservedKey(s.db.QueryRowContext(ctx, "SELECT "+reservedKeyColumns+
		" FROM reserved_signing_key WHERE key_did = ? AND did IS NULL AND expires_at > ?", keyDID, now))
}

// ClearReservedSigningKey deletes the reservation of keyDID and any reservation for did (an account now uses
// the key, or was created with another one).
func (s *Store) ClearReservedSigningKey(ctx context.Context, keyDID string, did syntax.DID) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM reserved_signing_key WHERE key_did = ? OR did = ?", keyDID, did)
	return err
}

const reservedKeyColumns = "key_did, did, private_key, created_at, expires_at"

func scanReservedKey(row *sql.Row) (*ReservedKey, error) {
	var k ReservedKey
	var did sql.NullString
	var created, expires int64
	if err := row.Scan(&k.KeyDID, &did, &k.PrivateKey, &created, &expires); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	k.DID = syntax.DID(did.String)
	k.CreatedAt, k.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	return &k, nil
}
