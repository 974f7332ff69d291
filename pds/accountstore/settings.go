package accountstore

import (
	"context"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// SetEmailConfirmed records that the account proved it owns its address, and drops the used token.
func (s *Store) SetEmailConfirmed(ctx context.Context, did syntax.DID, at time.Time) error {
	defer s.changed(did)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE account SET email_confirmed_at = ? WHERE did = ?", fmtTime(&at), did)
	if err != nil {
		return err
	}
	if err := oneRow(res); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM email_token WHERE did = ? AND purpose = ?", did, string(PurposeConfirmEmail)); err != nil {
		return err
	}
	return tx.Commit()
}

// UpdateEmail changes the account's address: the new one is unconfirmed, and every outstanding email token
// (sent to the old address) is dropped. ErrEmailTaken if another account has it.
func (s *Store) UpdateEmail(ctx context.Context, did syntax.DID, email string) error {
	defer s.changed(did)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE account SET email = ?,
		email_confirmed_at = CASE WHEN email = ? COLLATE NOCASE THEN email_confirmed_at ELSE NULL END WHERE did = ?`,
		email, email, did)
	if err != nil {
		return uniqueErr(err)
	}
	if err := oneRow(res); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM email_token WHERE did = ?", did); err != nil {
		return err
	}
	return tx.Commit()
}

// UpdatePassword sets a new password hash and, in the same transaction, revokes every refresh token of the
// account and drops its password-reset token: a changed password ends every session.
func (s *Store) UpdatePassword(ctx context.Context, did syntax.DID, passwordHash string) error {
	defer s.changed(did)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE account SET password_hash = ? WHERE did = ?", passwordHash, did)
	if err != nil {
		return err
	}
	if err := oneRow(res); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_token WHERE did = ?", did); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM email_token WHERE did = ? AND purpose = ?", did, string(PurposeResetPassword)); err != nil {
		return err
	}
	return tx.Commit()
}

// SetEmailAuthFactor turns two-factor sign-in by email on or off.
func (s *Store) SetEmailAuthFactor(ctx context.Context, did syntax.DID, on bool) error {
	defer s.changed(did)
	res, err := s.db.ExecContext(ctx, "UPDATE account SET email_auth_factor = ? WHERE did = ?", on, did)
	if err != nil {
		return err
	}
	return oneRow(res)
}
