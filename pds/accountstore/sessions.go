package accountstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// LegacySession is a live session made with createSession (its current refresh token): the account pages list
// and revoke them.
type LegacySession struct {
	ID              string // the refresh token's id (jti)
	ExpiresAt       time.Time
	AppPasswordName string // "" for the account password
}

// LegacySessions lists did's live sessions: refresh tokens not yet rotated away and not expired, soonest to
// expire last (the most recently used first).
func (s *Store) LegacySessions(ctx context.Context, did syntax.DID) ([]LegacySession, error) {
	return orEmpty(queryRows(ctx, s.db, func(row rowScanner) (LegacySession, error) {
		var l LegacySession
		var exp int64
		var app sql.NullString
		if err := row.Scan(&l.ID, &exp, &app); err != nil {
			return l, err
		}
		l.ExpiresAt, l.AppPasswordName = time.Unix(exp, 0).UTC(), app.String
		return l, nil
	}, `SELECT id, expires_at, app_password_name FROM refresh_token
		WHERE did = ? AND next_id IS NULL AND expires_at > ? ORDER BY expires_at DESC, id`, did, s.clock().Unix()))
}

// DeleteRefreshTokenOf revokes one refresh token of did (and its predecessor in the grace period); ErrNotFound
// when did has no such token, so one account can never end another's session.
func (s *Store) DeleteRefreshTokenOf(ctx context.Context, did syntax.DID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM refresh_token WHERE did = ? AND (id = ? OR next_id = ?)`, did, id, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
