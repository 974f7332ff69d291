package accountstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// TokenPurpose says what an emailed token authorises; a token is only good for its own purpose.
type TokenPurpose string

const (
	PurposeConfirmEmail  TokenPurpose = "confirm_email"
	PurposeUpdateEmail   TokenPurpose = "update_email"
	PurposeResetPassword TokenPurpose = "reset_password"
	PurposeDeleteAccount TokenPurpose = "delete_account"
	PurposePLCOperation  TokenPurpose = "plc_operation"
	PurposeSignIn        TokenPurpose = "2fa_code" // the second factor of a sign-in (emailAuthFactor)
)

// EmailTokenTTL is how long an emailed token stays valid (the reference's 15 minutes).
const EmailTokenTTL = 15 * time.Minute

var (
	ErrInvalidToken = errors.New("token is invalid")
	ErrExpiredToken = errors.New("token is expired")
)

// newEmailToken makes a token in the reference's shape: ten base32 characters, upper case, "XXXXX-XXXXX"
// (50 bits of randomness; tokens are single use, short lived and rate limited).
func newEmailToken() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 10)
	rand.Read(b)
	out := make([]byte, 0, 11)
	for i, c := range b {
		if i == 5 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)]) // 256 is a multiple of 32: no bias
	}
	return string(out)
}

// normalizeToken accepts what a user types back: any case, surrounding spaces.
func normalizeToken(token string) string { return strings.ToUpper(strings.TrimSpace(token)) }

func (s *Store) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// CreateEmailToken makes a new token for did and purpose, replacing any earlier one of that purpose.
func (s *Store) CreateEmailToken(ctx context.Context, did syntax.DID, purpose TokenPurpose) (string, error) {
	now := s.clock().UTC().Format(timeFormat)
	for range 5 { // a collision with another account's live token is astronomically rare; retry anyway
		token := newEmailToken()
		_, err := s.db.ExecContext(ctx, `INSERT INTO email_token (purpose, did, token, requested_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (purpose, did) DO UPDATE SET token = excluded.token, requested_at = excluded.requested_at`,
			string(purpose), did, token, now)
		if err == nil {
			return token, nil
		}
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return "", ErrNotFound
		}
		if !strings.Contains(err.Error(), "UNIQUE constraint failed: email_token.purpose, email_token.token") {
			return "", err
		}
	}
	return "", errors.New("could not allocate a unique email token")
}

// checkToken validates a stored token's age; requested is its stored requested_at.
func (s *Store) checkTokenAge(requested string) error {
	t, err := time.Parse(timeFormat, requested)
	if err != nil || s.clock().Sub(t) > EmailTokenTTL {
		return ErrExpiredToken
	}
	return nil
}

// CheckEmailToken validates did's token for purpose without using it up (for flows that must check the token
// before doing work that may still fail; they call ConsumeEmailToken or DeleteEmailToken after).
func (s *Store) CheckEmailToken(ctx context.Context, did syntax.DID, purpose TokenPurpose, token string) error {
	return s.tokenRow(ctx, "SELECT requested_at FROM email_token WHERE purpose = ? AND did = ? AND token = ?", did, purpose, token)
}

// ConsumeEmailToken validates did's token for purpose and deletes it: a token works once.
func (s *Store) ConsumeEmailToken(ctx context.Context, did syntax.DID, purpose TokenPurpose, token string) error {
	return s.tokenRow(ctx, "DELETE FROM email_token WHERE purpose = ? AND did = ? AND token = ? RETURNING requested_at", did, purpose, token)
}

// tokenRow runs query (selecting or deleting did's token for purpose, returning its requested_at) and checks
// the token: ErrInvalidToken if there is none, ErrExpiredToken if it is too old.
func (s *Store) tokenRow(ctx context.Context, query string, did syntax.DID, purpose TokenPurpose, token string) error {
	var requested string
	err := s.db.QueryRowContext(ctx, query, string(purpose), did, normalizeToken(token)).Scan(&requested)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidToken
	}
	if err != nil {
		return err
	}
	return s.checkTokenAge(requested)
}

// ConsumeEmailTokenByValue finds the account a token was issued to (resetPassword only has the token), checks
// and deletes it, and returns the account's DID.
func (s *Store) ConsumeEmailTokenByValue(ctx context.Context, purpose TokenPurpose, token string) (syntax.DID, error) {
	var did syntax.DID
	var requested string
	err := s.db.QueryRowContext(ctx, "DELETE FROM email_token WHERE purpose = ? AND token = ? RETURNING did, requested_at",
		string(purpose), normalizeToken(token)).Scan(&did, &requested)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrInvalidToken
	}
	if err != nil {
		return "", err
	}
	return did, s.checkTokenAge(requested)
}

// DeleteEmailToken removes did's token for purpose (if any).
func (s *Store) DeleteEmailToken(ctx context.Context, did syntax.DID, purpose TokenPurpose) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM email_token WHERE purpose = ? AND did = ?", string(purpose), did)
	return err
}
