package accountstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// OAuth state of the authorization server (package pds/oauth). Codes, refresh tokens and device secrets are passed
// here in clear and stored as their sha256 (hashSecret), so the database never holds a usable secret.

var (
	// ErrOAuthRequestUsed: the authorization request was already approved, or belongs to another browser.
	ErrOAuthRequestUsed = errors.New("oauth request already used or bound to another device")
	// ErrOAuthReplay: a refresh token or code that was already used; its session has been revoked.
	ErrOAuthReplay = errors.New("oauth grant replayed")
)

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// OAuthRequest is a pushed authorization request.
type OAuthRequest struct {
	ID         string
	ClientID   string
	ClientAuth string // how the client authenticated at PAR ("none", "private_key_jwt:<kid>")
	DPoPJKT    string
	Params     string     // the validated request, JSON
	DID        syntax.DID // set on approval
	ExpiresAt  time.Time
	hasDevice  bool
}

// CreateOAuthRequest stores a new pushed request.
func (s *Store) CreateOAuthRequest(ctx context.Context, r *OAuthRequest) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_request (id, client_id, client_auth, dpop_jkt, params, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, r.ID, r.ClientID, r.ClientAuth, r.DPoPJKT, r.Params, ms(r.ExpiresAt))
	return err
}

const oauthRequestCols = `id, client_id, client_auth, dpop_jkt, params, COALESCE(did, ''), expires_at, device_hash IS NOT NULL`

func scanOAuthRequest(row interface{ Scan(...any) error }) (*OAuthRequest, error) {
	var r OAuthRequest
	var exp int64
	err := row.Scan(&r.ID, &r.ClientID, &r.ClientAuth, &r.DPoPJKT, &r.Params, &r.DID, &exp, &r.hasDevice)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.ExpiresAt = fromMS(exp)
	return &r, nil
}

// OpenOAuthRequest returns the pending (not yet approved, unexpired) request id for the browser holding
// deviceSecret: the first browser to open a request owns it, and any other gets ErrOAuthRequestUsed. It extends
// the request's expiry to expiresAt (the reference's inactivity timeout).
func (s *Store) OpenOAuthRequest(ctx context.Context, id, deviceSecret string, expiresAt time.Time) (*OAuthRequest, error) {
	now := ms(s.clock())
	dev := hashSecret(deviceSecret)
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_request SET device_hash = ?, expires_at = ?
		WHERE id = ? AND did IS NULL AND expires_at > ? AND (device_hash IS NULL OR device_hash = ?)`,
		dev, ms(expiresAt), id, now, dev)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		r, err := scanOAuthRequest(s.db.QueryRowContext(ctx, `SELECT `+oauthRequestCols+` FROM oauth_request WHERE id = ?`, id))
		if err != nil {
			return nil, err
		}
		if !r.ExpiresAt.After(s.clock()) {
			return nil, ErrNotFound
		}
		return nil, ErrOAuthRequestUsed
	}
	return scanOAuthRequest(s.db.QueryRowContext(ctx, `SELECT `+oauthRequestCols+` FROM oauth_request WHERE id = ?`, id))
}

// ApproveOAuthRequest binds the request to did and the code (stored hashed); it must still be pending, unexpired
// and opened by this browser.
func (s *Store) ApproveOAuthRequest(ctx context.Context, id, deviceSecret string, did syntax.DID, code string, expiresAt time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_request SET did = ?, code_hash = ?, expires_at = ?
		WHERE id = ? AND did IS NULL AND device_hash = ? AND expires_at > ?`,
		did, hashSecret(code), ms(expiresAt), id, hashSecret(deviceSecret), ms(s.clock()))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrOAuthRequestUsed
	}
	return nil
}

// DeleteOAuthRequest removes a request (denied, or failed).
func (s *Store) DeleteOAuthRequest(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM oauth_request WHERE id = ?`, id)
	return err
}

// ConsumeOAuthCode deletes and returns the approved request holding code. A code seen before (its request gone but
// a session started from it) revokes that session and returns ErrOAuthReplay; an unknown or expired code
// ErrNotFound.
func (s *Store) ConsumeOAuthCode(ctx context.Context, code string) (*OAuthRequest, error) {
	h := hashSecret(code)
	r, err := scanOAuthRequest(s.db.QueryRowContext(ctx, `DELETE FROM oauth_request WHERE code_hash = ? AND did IS NOT NULL
		RETURNING `+oauthRequestCols, h))
	if errors.Is(err, ErrNotFound) {
		res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_session WHERE code_hash = ?`, h)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil, ErrOAuthReplay
		}
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if !r.ExpiresAt.After(s.clock()) {
		return nil, ErrNotFound
	}
	return r, nil
}

// OAuthSession is one grant: the refresh-token family of a client for an account.
type OAuthSession struct {
	ID               string
	DID              syntax.DID
	ClientID         string
	ClientAuth       string
	Scope            string
	DPoPJKT          string
	TokenID          string // jti of the current access token
	CreatedAt        time.Time
	UpdatedAt        time.Time
	ExpiresAt        time.Time // end of the session, whatever the refreshes
	RefreshExpiresAt time.Time // end of the current refresh token
}

// CreateOAuthSession stores a new session with its first refresh token and the code it came from (both hashed).
func (s *Store) CreateOAuthSession(ctx context.Context, sess *OAuthSession, refreshToken, code string) error {
	var codeHash any
	if code != "" {
		codeHash = hashSecret(code)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_session (id, did, client_id, client_auth, scope, dpop_jkt, token_id,
		refresh_hash, code_hash, created_at, updated_at, expires_at, refresh_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, sess.DID, sess.ClientID, sess.ClientAuth, sess.Scope, sess.DPoPJKT, sess.TokenID, hashSecret(refreshToken),
		codeHash, ms(sess.CreatedAt), ms(sess.UpdatedAt), ms(sess.ExpiresAt), ms(sess.RefreshExpiresAt))
	return err
}

const oauthSessionCols = `id, did, client_id, client_auth, scope, dpop_jkt, token_id, created_at, updated_at, expires_at, refresh_expires_at`

func scanOAuthSession(row interface{ Scan(...any) error }) (*OAuthSession, error) {
	var o OAuthSession
	var c, u, e, re int64
	err := row.Scan(&o.ID, &o.DID, &o.ClientID, &o.ClientAuth, &o.Scope, &o.DPoPJKT, &o.TokenID, &c, &u, &e, &re)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	o.CreatedAt, o.UpdatedAt, o.ExpiresAt, o.RefreshExpiresAt = fromMS(c), fromMS(u), fromMS(e), fromMS(re)
	return &o, nil
}

// OAuthSessionByRefresh returns the live session whose current refresh token is refreshToken. A refresh token
// already rotated away revokes its session and returns ErrOAuthReplay; an unknown or expired one ErrNotFound.
func (s *Store) OAuthSessionByRefresh(ctx context.Context, refreshToken string) (*OAuthSession, error) {
	h := hashSecret(refreshToken)
	o, err := scanOAuthSession(s.db.QueryRowContext(ctx, `SELECT `+oauthSessionCols+` FROM oauth_session WHERE refresh_hash = ?`, h))
	if errors.Is(err, ErrNotFound) {
		res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_session WHERE id = (SELECT session_id FROM oauth_used_refresh WHERE refresh_hash = ?)`, h)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil, ErrOAuthReplay
		}
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if !o.ExpiresAt.After(now) || !o.RefreshExpiresAt.After(now) {
		return nil, ErrNotFound
	}
	return o, nil
}

// RotateOAuthRefresh replaces the session's refresh token oldToken with newToken and its access token id, in one
// step that fails with ErrOAuthReplay (and revokes the session) when oldToken is no longer current, as when two
// requests race with the same token.
func (s *Store) RotateOAuthRefresh(ctx context.Context, sessionID, oldToken, newToken, tokenID string, refreshExpiresAt time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	oldHash := hashSecret(oldToken)
	res, err := tx.ExecContext(ctx, `UPDATE oauth_session SET refresh_hash = ?, token_id = ?, updated_at = ?, refresh_expires_at = ?
		WHERE id = ? AND refresh_hash = ?`, hashSecret(newToken), tokenID, ms(s.clock()), ms(refreshExpiresAt), sessionID, oldHash)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_session WHERE id = ?`, sessionID); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return ErrOAuthReplay
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_used_refresh (refresh_hash, session_id) VALUES (?, ?)`, oldHash, sessionID); err != nil {
		return err
	}
	return tx.Commit()
}

// OAuthSessionByTokenID returns the live session whose current access token has jti tokenID.
func (s *Store) OAuthSessionByTokenID(ctx context.Context, tokenID string) (*OAuthSession, error) {
	o, err := scanOAuthSession(s.db.QueryRowContext(ctx, `SELECT `+oauthSessionCols+` FROM oauth_session WHERE token_id = ?`, tokenID))
	if err != nil {
		return nil, err
	}
	if !o.ExpiresAt.After(s.clock()) {
		return nil, ErrNotFound
	}
	return o, nil
}

// OAuthSessions lists the live sessions of did, newest first.
func (s *Store) OAuthSessions(ctx context.Context, did syntax.DID) ([]*OAuthSession, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+oauthSessionCols+` FROM oauth_session WHERE did = ? AND expires_at > ?
		ORDER BY created_at DESC`, did, ms(s.clock()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*OAuthSession
	for rows.Next() {
		o, err := scanOAuthSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteOAuthSession revokes one session; did, when not empty, must own it. It returns the session's current
// access token id ("" and ErrNotFound when there was none).
func (s *Store) DeleteOAuthSession(ctx context.Context, id string, did syntax.DID) (string, error) {
	var tokenID string
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_session WHERE id = ? AND (? = '' OR did = ?) RETURNING token_id`,
		id, did, did).Scan(&tokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return tokenID, err
}

// DeleteOAuthSessionByRefresh revokes the session holding refreshToken (current or already rotated), returning
// its current access token id (ErrNotFound when none).
func (s *Store) DeleteOAuthSessionByRefresh(ctx context.Context, refreshToken string) (string, error) {
	h := hashSecret(refreshToken)
	var tokenID string
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_session WHERE refresh_hash = ?
		OR id = (SELECT session_id FROM oauth_used_refresh WHERE refresh_hash = ?) RETURNING token_id`, h, h).Scan(&tokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return tokenID, err
}

// DeleteOAuthSessionByTokenID revokes the session whose current access token is tokenID.
func (s *Store) DeleteOAuthSessionByTokenID(ctx context.Context, tokenID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_session WHERE token_id = ?`, tokenID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteOAuthSessionsForDID revokes every session of did (and forgets it on every browser and in every pending
// request), returning the revoked access token ids.
func (s *Store) DeleteOAuthSessionsForDID(ctx context.Context, did syntax.DID) ([]string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `DELETE FROM oauth_session WHERE did = ? RETURNING token_id`, did)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_device_account WHERE did = ?`, did); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_request WHERE did = ?`, did); err != nil {
		return nil, err
	}
	return ids, tx.Commit()
}

// TouchOAuthDevice records a browser's device cookie (creating its row on first sight).
func (s *Store) TouchOAuthDevice(ctx context.Context, deviceSecret, userAgent, ip string) error {
	now := ms(s.clock())
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_device (hash, user_agent, ip, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET user_agent = excluded.user_agent, ip = excluded.ip, last_seen_at = excluded.last_seen_at`,
		hashSecret(deviceSecret), userAgent, ip, now, now)
	return err
}

// AddOAuthDeviceAccount remembers that did signed in on the browser holding deviceSecret.
func (s *Store) AddOAuthDeviceAccount(ctx context.Context, deviceSecret string, did syntax.DID) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_device_account (device_hash, did, authenticated_at) VALUES (?, ?, ?)
		ON CONFLICT (device_hash, did) DO UPDATE SET authenticated_at = excluded.authenticated_at`,
		hashSecret(deviceSecret), did, ms(s.clock()))
	return err
}

// OAuthDeviceAccounts lists the accounts signed in on a browser since notBefore, most recent first.
func (s *Store) OAuthDeviceAccounts(ctx context.Context, deviceSecret string, notBefore time.Time) ([]syntax.DID, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT did FROM oauth_device_account WHERE device_hash = ? AND authenticated_at > ?
		ORDER BY authenticated_at DESC`, hashSecret(deviceSecret), ms(notBefore))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []syntax.DID
	for rows.Next() {
		var did syntax.DID
		if err := rows.Scan(&did); err != nil {
			return nil, err
		}
		out = append(out, did)
	}
	return out, rows.Err()
}

// RemoveOAuthDeviceAccount signs did out of one browser.
func (s *Store) RemoveOAuthDeviceAccount(ctx context.Context, deviceSecret string, did syntax.DID) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM oauth_device_account WHERE device_hash = ? AND did = ?`, hashSecret(deviceSecret), did)
	return err
}

// UseOAuthOnce records a single-use value (kind "jti", "code_challenge", ...) until expiresAt and reports whether
// it was fresh; false means it was seen before and has not expired.
func (s *Store) UseOAuthOnce(ctx context.Context, kind, value string, expiresAt time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM oauth_replay WHERE kind = ? AND value = ? AND expires_at <= ?`,
		kind, value, ms(s.clock())); err != nil {
		return false, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO oauth_replay (kind, value, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		kind, value, ms(expiresAt))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, tx.Commit()
}

// PruneOAuth deletes expired requests, sessions and single-use values, browser sign-ins older than
// signInCutoff, and devices unseen since deviceCutoff.
func (s *Store) PruneOAuth(ctx context.Context, deviceCutoff, signInCutoff time.Time) error {
	now := ms(s.clock())
	for _, q := range []string{
		`DELETE FROM oauth_request WHERE expires_at <= ?1`,
		`DELETE FROM oauth_session WHERE expires_at <= ?1 OR refresh_expires_at <= ?1`,
		`DELETE FROM oauth_replay WHERE expires_at <= ?1`,
		`DELETE FROM oauth_device WHERE last_seen_at <= ?2`,
		`DELETE FROM oauth_device_account WHERE authenticated_at <= ?3`,
	} {
		if _, err := s.db.ExecContext(ctx, q, now, ms(deviceCutoff), ms(signInCutoff)); err != nil {
			return err
		}
	}
	return nil
}
