package accountstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// ErrAppPasswordExists: the account already has an app password of that name.
var ErrAppPasswordExists = errors.New("app password name already in use")

// AppPassword is an app password's metadata (the password itself is only shown once, at creation).
type AppPassword struct {
	Name       string
	CreatedAt  time.Time
	Privileged bool
}

// CreateAppPassword stores an app password's hash under name.
func (s *Store) CreateAppPassword(ctx context.Context, did syntax.DID, name, passwordHash string, privileged bool, createdAt time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO app_password (did, name, password_hash, privileged, created_at) VALUES (?, ?, ?, ?, ?)`,
		did, name, passwordHash, privileged, createdAt.UTC().Format(timeFormat))
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "UNIQUE constraint failed: app_password"), strings.Contains(msg, "PRIMARY KEY"):
			return ErrAppPasswordExists
		case strings.Contains(msg, "FOREIGN KEY"):
			return ErrNotFound
		}
		return err
	}
	return nil
}

// ListAppPasswords returns an account's app passwords, newest first.
func (s *Store) ListAppPasswords(ctx context.Context, did syntax.DID) ([]AppPassword, error) {
	return orEmpty(queryRows(ctx, s.db, func(row rowScanner) (AppPassword, error) {
		var a AppPassword
		var created string
		if err := row.Scan(&a.Name, &created, &a.Privileged); err != nil {
			return a, err
		}
		a.CreatedAt, _ = time.Parse(timeFormat, created)
		return a, nil
	}, "SELECT name, created_at, privileged FROM app_password WHERE did = ? ORDER BY created_at DESC, name", did))
}

// AppPasswordByHash finds the app password of did whose stored hash is passwordHash (app passwords are hashed
// with a salt derived from the DID, so a login costs one hash, as in the reference), or ErrNotFound.
func (s *Store) AppPasswordByHash(ctx context.Context, did syntax.DID, passwordHash string) (*AppPassword, error) {
	return s.appPassword(ctx, "SELECT name, created_at, privileged FROM app_password WHERE did = ? AND password_hash = ?", did, passwordHash)
}

// AppPasswordByName returns one app password or ErrNotFound.
func (s *Store) AppPasswordByName(ctx context.Context, did syntax.DID, name string) (*AppPassword, error) {
	return s.appPassword(ctx, "SELECT name, created_at, privileged FROM app_password WHERE did = ? AND name = ?", did, name)
}

func (s *Store) appPassword(ctx context.Context, q string, args ...any) (*AppPassword, error) {
	var a AppPassword
	var created string
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&a.Name, &created, &a.Privileged)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	a.CreatedAt, _ = time.Parse(timeFormat, created)
	return &a, nil
}

// RevokeAppPassword deletes an app password and every session created with it, in one transaction.
// Revoking a name that does not exist is not an error (the reference does the same).
func (s *Store) RevokeAppPassword(ctx context.Context, did syntax.DID, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM app_password WHERE did = ? AND name = ?", did, name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?", did, name); err != nil {
		return err
	}
	return tx.Commit()
}
