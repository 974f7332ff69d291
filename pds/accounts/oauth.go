package accounts

import (
	"context"
	"errors"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/xrpc"
)

// SessionRevoker ends an account's sessions kept outside the account store (the OAuth provider's): called when
// the password changes and when the account is deactivated, taken down or deleted.
type SessionRevoker interface {
	RevokeAccount(ctx context.Context, did syntax.DID) error
}

// SetSessionRevoker installs the revoker (the OAuth provider, built after the service because it signs people
// in through it).
func (s *Service) SetSessionRevoker(r SessionRevoker) { s.revoker = r }

// endSessions ends the account's OAuth sessions; refresh tokens in the account store end with the store call
// that changed the account.
func (s *Service) endSessions(ctx context.Context, did syntax.DID) error {
	if s.revoker == nil {
		return nil
	}
	return s.revoker.RevokeAccount(context.WithoutCancel(ctx), did)
}

// OAuthAccounts is the account service as the OAuth sign-in pages see it (oauth.Accounts).
func (s *Service) OAuthAccounts() oauth.Accounts { return oauthAccounts{s} }

type oauthAccounts struct{ s *Service }

// SignIn checks a handle, email or DID and the account password. App passwords never match (they live in
// another table and this checks only the account password); taken-down accounts are unavailable (before any code
// is mailed); deactivated ones sign in, as in the reference (whose OAuth store signs in what login accepts):
// a migration's new account is deactivated until the move is done, and the app doing the move signs it in to
// call activateAccount. Its writes are refused by the XRPC layer. With two-factor sign-in by email, the code is
// mailed and the answer is oauth.ErrCodeRequired.
func (a oauthAccounts) SignIn(ctx context.Context, identifier, password string) (oauth.Account, error) {
	acct, err := a.s.Lookup(ctx, identifier)
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if err != nil {
		return oauth.Account{}, err
	}
	if !VerifyPassword(password, acct.PasswordHash) {
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if acct.TakedownRef != "" {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if acct.EmailAuthFactor {
		var xe *xrpc.Error
		if err := a.s.SignInFactor(ctx, acct, ""); err != nil && (!errors.As(err, &xe) || xe.Name != xrpc.NameAuthFactorTokenRequired) {
			return oauth.Account{}, err // the code could not be mailed
		}
		return oauthAccount(acct), oauth.ErrCodeRequired
	}
	return oauthAccount(acct), nil
}

// SignInCode uses up the sign-in code mailed to did (oauth.ErrBadCode when it is wrong or expired) and then
// answers as Account does for the account as it is now.
func (a oauthAccounts) SignInCode(ctx context.Context, did syntax.DID, code string) (oauth.Account, error) {
	if err := a.s.CheckSignInCode(ctx, did, code); err != nil {
		return oauth.Account{}, oauth.ErrBadCode
	}
	return a.Account(ctx, did)
}

// Account returns the account for the OAuth provider (sign-in, consent, code exchange, refresh): deactivated
// ones included (marked), taken-down and deleted ones oauth.ErrAccountUnavailable.
func (a oauthAccounts) Account(ctx context.Context, did syntax.DID) (oauth.Account, error) {
	acct, err := a.s.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if err != nil {
		return oauth.Account{}, err
	}
	if acct.TakedownRef != "" {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	return oauthAccount(acct), nil
}

func oauthAccount(acct *accountstore.Account) oauth.Account {
	return oauth.Account{DID: acct.DID, Handle: acct.Handle, Email: acct.Email, Deactivated: acct.DeactivatedAt != nil}
}
