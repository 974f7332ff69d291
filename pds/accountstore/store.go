// Package accountstore keeps the service-wide account database (account.sqlite): accounts, their handles,
// password hashes and signing keys, refresh tokens and invite codes. Repositories live elsewhere (package repo).
package accountstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var (
	ErrNotFound      = errors.New("not found")
	ErrHandleTaken   = errors.New("handle already taken")
	ErrEmailTaken    = errors.New("email already taken")
	ErrDIDTaken      = errors.New("account already exists")
	ErrInvalidInvite = errors.New("invalid invite code")
)

// Account is one hosted account.
type Account struct {
	DID              syntax.DID
	Handle           string
	Email            string
	PasswordHash     string
	SigningKey       []byte // K256 private key bytes
	CreatedAt        time.Time
	EmailConfirmedAt *time.Time
	DeactivatedAt    *time.Time
	DeleteAfter      *time.Time
	TakedownRef      string
	InvitesDisabled  bool
	EmailAuthFactor  bool // sign-in with the account password also needs a mailed code

	signer *signerMemo // see Signer
}

// Active reports whether the account is neither deactivated nor taken down.
func (a *Account) Active() bool { return a.DeactivatedAt == nil && a.TakedownRef == "" }

// Status is the reference's account status word for inactive accounts ("" when active).
func (a *Account) Status() string {
	switch {
	case a.TakedownRef != "":
		return "takendown"
	case a.DeactivatedAt != nil:
		return "deactivated"
	}
	return ""
}

// RefreshToken is a stored refresh token (its JWT carries the ID as jti).
type RefreshToken struct {
	ID              string
	DID             syntax.DID
	ExpiresAt       time.Time
	AppPasswordName string
	NextID          string
}

// Store is the account database.
type Store struct {
	db    *sql.DB
	now   func() time.Time // nil: time.Now (tests move the clock)
	cache *accountCache
}

// Open opens (creating if needed) the account database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	migrations, _ := fs.Sub(migrationFiles, "migrations")
	db, err := sqlitedb.Open(ctx, path, migrations, 4)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, cache: newAccountCache(accountCacheSize)}, nil
}

func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers (health endpoint).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

const timeFormat = time.RFC3339Nano

func fmtTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s sql.NullString) *time.Time {
	if !s.Valid {
		return nil
	}
	t, err := time.Parse(timeFormat, s.String)
	if err != nil {
		return nil
	}
	return &t
}

// CreateAccount inserts a new account; with inviteCode set it also records (and checks) the invite use, in the
// same transaction.
func (s *Store) CreateAccount(ctx context.Context, a *Account, inviteCode string) error {
	defer s.changed(a.DID)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if inviteCode != "" {
		if err := useInvite(ctx, tx, inviteCode, a.DID); err != nil {
			return err
		}
	}
	var email any
	if a.Email != "" {
		email = a.Email
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO account (did, handle, email, password_hash, signing_key, created_at, deactivated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.DID, a.Handle, email, a.PasswordHash, a.SigningKey, a.CreatedAt.UTC().Format(timeFormat), fmtTime(a.DeactivatedAt))
	if err != nil {
		return uniqueErr(err)
	}
	return tx.Commit()
}

func uniqueErr(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "UNIQUE constraint failed: account.handle"):
		return ErrHandleTaken
	case strings.Contains(msg, "UNIQUE constraint failed: account.email"):
		return ErrEmailTaken
	case strings.Contains(msg, "UNIQUE constraint failed: account.did"):
		return ErrDIDTaken
	}
	return err
}

const accountColumns = `did, handle, email, password_hash, signing_key, created_at, email_confirmed_at,
	deactivated_at, delete_after, takedown_ref, invites_disabled, email_auth_factor`

func scanAccount(row rowScanner) (*Account, error) {
	var a Account
	var email, takedown sql.NullString
	var created string
	var confirmed, deactivated, deleteAfter sql.NullString
	if err := row.Scan(&a.DID, &a.Handle, &email, &a.PasswordHash, &a.SigningKey, &created, &confirmed,
		&deactivated, &deleteAfter, &takedown, &a.InvitesDisabled, &a.EmailAuthFactor); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	a.Email = email.String
	a.TakedownRef = takedown.String
	if t, err := time.Parse(timeFormat, created); err == nil {
		a.CreatedAt = t
	}
	a.EmailConfirmedAt = parseTime(confirmed)
	a.DeactivatedAt = parseTime(deactivated)
	a.DeleteAfter = parseTime(deleteAfter)
	a.signer = &signerMemo{raw: string(a.SigningKey)}
	return &a, nil
}

// AccountByDID returns the account or ErrNotFound. The result is the caller's to modify.
func (s *Store) AccountByDID(ctx context.Context, did syntax.DID) (*Account, error) {
	if a, ok := s.cache.getDID(did); ok {
		return a, nil
	}
	gen := s.cache.generation()
	a, err := scanAccount(s.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM account WHERE did = ?", did))
	if err != nil {
		return nil, err
	}
	s.cache.put(a, gen)
	return a, nil
}

// AccountByHandle returns the account or ErrNotFound. Handles are stored lower-case.
func (s *Store) AccountByHandle(ctx context.Context, handle string) (*Account, error) {
	handle = strings.ToLower(handle)
	if a, ok := s.cache.getHandle(handle); ok {
		return a, nil
	}
	gen := s.cache.generation()
	a, err := scanAccount(s.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM account WHERE handle = ?", handle))
	if err != nil {
		return nil, err
	}
	s.cache.put(a, gen)
	return a, nil
}

// AccountByEmail returns the account or ErrNotFound (case-insensitive).
func (s *Store) AccountByEmail(ctx context.Context, email string) (*Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM account WHERE email = ?", email))
}

// ListAccounts pages through accounts in DID order, after cursor (a DID; "" for the first page).
func (s *Store) ListAccounts(ctx context.Context, cursor string, limit int) ([]*Account, error) {
	return queryRows(ctx, s.db, scanAccount, "SELECT "+accountColumns+" FROM account WHERE did > ? ORDER BY did LIMIT ?", cursor, limit)
}

// CountAccounts returns the number of accounts.
func (s *Store) CountAccounts(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM account").Scan(&n)
	return n, err
}

// CountByStatus counts accounts by status: "takendown" (a takedown, whether or not also deactivated),
// "deactivated", "active".
func (s *Store) CountByStatus(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT CASE WHEN takedown_ref IS NOT NULL THEN 'takendown'
		WHEN deactivated_at IS NOT NULL THEN 'deactivated' ELSE 'active' END, count(*) FROM account GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, err
		}
		out[status] = n
	}
	return out, rows.Err()
}

// UpdateHandle changes an account's handle.
func (s *Store) UpdateHandle(ctx context.Context, did syntax.DID, handle string) error {
	defer s.changed(did)
	res, err := s.db.ExecContext(ctx, "UPDATE account SET handle = ? WHERE did = ?", strings.ToLower(handle), did)
	if err != nil {
		return uniqueErr(err)
	}
	return oneRow(res)
}

// SetDeactivated marks an account deactivated (at != nil) or active again (at == nil).
func (s *Store) SetDeactivated(ctx context.Context, did syntax.DID, at, deleteAfter *time.Time) error {
	defer s.changed(did)
	res, err := s.db.ExecContext(ctx, "UPDATE account SET deactivated_at = ?, delete_after = ? WHERE did = ?",
		fmtTime(at), fmtTime(deleteAfter), did)
	if err != nil {
		return err
	}
	return oneRow(res)
}

// DeleteAccount removes the account and, through foreign keys, its tokens.
func (s *Store) DeleteAccount(ctx context.Context, did syntax.DID) error {
	defer s.changed(did)
	res, err := s.db.ExecContext(ctx, "DELETE FROM account WHERE did = ?", did)
	if err != nil {
		return err
	}
	return oneRow(res)
}

func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateRefreshToken stores a new refresh token.
func (s *Store) CreateRefreshToken(ctx context.Context, t *RefreshToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)`,
		t.ID, t.DID, t.ExpiresAt.Unix(), nullString(t.AppPasswordName))
	return err
}

// RefreshTokenByID returns a stored, unexpired refresh token or ErrNotFound.
func (s *Store) RefreshTokenByID(ctx context.Context, id string) (*RefreshToken, error) {
	var t RefreshToken
	var exp int64
	var app, next sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, did, expires_at, app_password_name, next_id FROM refresh_token WHERE id = ?`, id).
		Scan(&t.ID, &t.DID, &exp, &app, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.ExpiresAt = time.Unix(exp, 0)
	t.AppPasswordName, t.NextID = app.String, next.String
	if time.Now().After(t.ExpiresAt) {
		return nil, ErrNotFound
	}
	return &t, nil
}

// RotateRefreshToken records that old was exchanged for next: next is stored, and old stays usable (returning
// the same next token) only until graceUntil, so a client that lost the response can retry. If old was already
// rotated (a concurrent refresh), the existing next ID is returned and nothing is written.
func (s *Store) RotateRefreshToken(ctx context.Context, old *RefreshToken, next *RefreshToken, graceUntil time.Time) (string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	var existing sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT next_id FROM refresh_token WHERE id = ?", old.ID).Scan(&existing); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", ErrNotFound
		}
		return "", err
	}
	if existing.Valid && existing.String != "" {
		return existing.String, nil
	}
	exp := old.ExpiresAt
	if graceUntil.Before(exp) {
		exp = graceUntil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE refresh_token SET next_id = ?, expires_at = ? WHERE id = ?", next.ID, exp.Unix(), old.ID); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)`,
		next.ID, next.DID, next.ExpiresAt.Unix(), nullString(next.AppPasswordName)); err != nil {
		return "", err
	}
	// Expired tokens of this account are dead weight; drop them while we are here.
	if _, err := tx.ExecContext(ctx, "DELETE FROM refresh_token WHERE did = ? AND expires_at < ?", old.DID, time.Now().Unix()); err != nil {
		return "", err
	}
	return next.ID, tx.Commit()
}

// DeleteRefreshToken revokes one refresh token (and the one it was rotated into).
func (s *Store) DeleteRefreshToken(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM refresh_token WHERE id = ? OR id = (SELECT next_id FROM refresh_token WHERE id = ?)`, id, id)
	return err
}

// DeleteRefreshTokensForAccount revokes every refresh token of an account.
func (s *Store) DeleteRefreshTokensForAccount(ctx context.Context, did syntax.DID) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM refresh_token WHERE did = ?", did)
	return err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateInviteCode stores an invite code usable `available` times.
func (s *Store) CreateInviteCode(ctx context.Context, code string, available int, forAccount, createdBy string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO invite_code (code, available, for_account, created_by, created_at) VALUES (?, ?, ?, ?, ?)`,
		code, available, forAccount, createdBy, time.Now().UTC().Format(timeFormat))
	return err
}

func useInvite(ctx context.Context, tx *sql.Tx, code string, usedBy syntax.DID) error {
	if err := checkInvite(ctx, tx, code); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)", code, usedBy, time.Now().UTC().Format(timeFormat))
	return err
}
