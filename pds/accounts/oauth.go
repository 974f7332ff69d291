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
// another table and this checks only the account password); taken-down accounts are unavailable; deactivated
// ones answer oauth.ErrAccountDeactivated (the account pages let them in to reactivate, the OAuth pages do
// not). With two-factor sign-in by email, the code is mailed and the answer is oauth.ErrCodeRequired.
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
		return oauth.Account{DID: acct.DID, Handle: acct.Handle, Email: acct.Email}, oauth.ErrCodeRequired
	}
	return signedIn(acct)
}

// SignInCode uses up the sign-in code mailed to did (oauth.ErrBadCode when it is wrong or expired) and then
// answers as SignIn does for the account as it is now: deactivated ones with oauth.ErrAccountDeactivated, so
// that an account with two-factor sign-in can reach the account pages to reactivate itself.
func (a oauthAccounts) SignInCode(ctx context.Context, did syntax.DID, code string) (oauth.Account, error) {
	if err := a.s.CheckSignInCode(ctx, did, code); err != nil {
		return oauth.Account{}, oauth.ErrBadCode
	}
	acct, err := a.s.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if err != nil {
		return oauth.Account{}, err
	}
	return signedIn(acct)
}

// signedIn is the answer to a sign-in whose credentials were right: taken down is unavailable, deactivated is
// oauth.ErrAccountDeactivated with the account.
func signedIn(acct *accountstore.Account) (oauth.Account, error) {
	found := oauth.Account{DID: acct.DID, Handle: acct.Handle, Email: acct.Email}
	if acct.TakedownRef != "" {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if !acct.Active() {
		return found, oauth.ErrAccountDeactivated
	}
	return found, nil
}

// Account returns a usable account.
func (a oauthAccounts) Account(ctx context.Context, did syntax.DID) (oauth.Account, error) {
	acct, err := a.s.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if err != nil {
		return oauth.Account{}, err
	}
	return usable(acct)
}

func usable(acct *accountstore.Account) (oauth.Account, error) {
	if !acct.Active() {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	return oauth.Account{DID: syntax.DID(acct.DID), Handle: acct.Handle, Email: acct.Email}, nil
}
