package auth

import (
	"context"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
)

// Legacy sessions (createSession) and app passwords as the account pages manage them. Revoking a session ends
// its refresh token at once; its access token, being stateless, works until it expires (AccessTTL), as in the
// reference.

// LegacySessions lists the account's live createSession sessions.
func (v *Verifier) LegacySessions(ctx context.Context, did syntax.DID) ([]accountstore.LegacySession, error) {
	return v.store.LegacySessions(ctx, did)
}

// RevokeLegacySession ends one of did's sessions (accountstore.ErrNotFound when did has no such session).
func (v *Verifier) RevokeLegacySession(ctx context.Context, did syntax.DID, id string) error {
	return v.store.DeleteRefreshTokenOf(ctx, did, id)
}

// RevokeLegacySessions ends every createSession session of did.
func (v *Verifier) RevokeLegacySessions(ctx context.Context, did syntax.DID) error {
	return v.store.DeleteRefreshTokensForAccount(ctx, did)
}

// AppPasswords lists did's app passwords, newest first.
func (v *Verifier) AppPasswords(ctx context.Context, did syntax.DID) ([]accountstore.AppPassword, error) {
	return v.store.ListAppPasswords(ctx, did)
}

// CreateAppPassword makes an app password named name and returns it (shown once: only its hash is kept).
// accountstore.ErrAppPasswordExists when the name is taken.
func (v *Verifier) CreateAppPassword(ctx context.Context, did syntax.DID, name string, privileged bool) (string, time.Time, error) {
	password := NewAppPassword()
	hash, err := HashAppPassword(did, password)
	if err != nil {
		return "", time.Time{}, err
	}
	now := time.Now().UTC()
	if err := v.store.CreateAppPassword(ctx, did, name, hash, privileged, now); err != nil {
		return "", time.Time{}, err
	}
	return password, now, nil
}

// RevokeAppPassword deletes did's app password name and ends the sessions made with it.
func (v *Verifier) RevokeAppPassword(ctx context.Context, did syntax.DID, name string) error {
	return v.store.RevokeAppPassword(ctx, did, name)
}
