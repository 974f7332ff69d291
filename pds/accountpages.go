package pds

import (
	"context"
	"errors"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/accountpages"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/xrpc"
)

// The OAuth provider and the account pages at /account, which share its browser sign-in. (Until the OAuth wiring
// of the auth seam lands, the provider is built here for its pages and endpoints.)

// pageAccounts is the pages' view of accounts: sign-in with the account password only (never an app password).
type pageAccounts struct{ s *accounts.Service }

func (a pageAccounts) SignIn(ctx context.Context, identifier, password string) (oauth.Account, error) {
	acct, err := a.s.Lookup(ctx, identifier)
	if errors.Is(err, accountstore.ErrNotFound) {
		accounts.VerifyPassword(password, "") // the same work whether or not the account exists
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if err != nil {
		return oauth.Account{}, err
	}
	if !accounts.VerifyPassword(password, acct.PasswordHash) {
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if acct.TakedownRef != "" {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if acct.EmailAuthFactor {
		// Mails the code; the pages then ask for it (SignInCode).
		var xe *xrpc.Error
		if err := a.s.SignInFactor(ctx, acct, ""); err != nil && (!errors.As(err, &xe) || xe.Name != xrpc.NameAuthFactorTokenRequired) {
			return oauth.Account{}, err
		}
		return pageAccount(acct), oauth.ErrCodeRequired
	}
	if !acct.Active() {
		return pageAccount(acct), oauth.ErrAccountDeactivated
	}
	return pageAccount(acct), nil
}

func (a pageAccounts) SignInCode(ctx context.Context, did syntax.DID, code string) error {
	return a.s.CheckSignInCode(ctx, did, code)
}

func (a pageAccounts) Account(ctx context.Context, did syntax.DID) (oauth.Account, error) {
	acct, err := a.s.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) || (err == nil && !acct.Active()) {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if err != nil {
		return oauth.Account{}, err
	}
	return pageAccount(acct), nil
}

func pageAccount(a *accountstore.Account) oauth.Account {
	return oauth.Account{DID: syntax.DID(a.DID), Handle: a.Handle, Email: a.Email}
}

// pageLinks are describeServer's links, shown at the bottom of every page.
func (c *Config) pageLinks() []oauth.PageLink {
	var out []oauth.PageLink
	if c.PrivacyPolicyURL != "" {
		out = append(out, oauth.PageLink{Text: "Privacy policy", URL: c.PrivacyPolicyURL})
	}
	if c.TermsOfServiceURL != "" {
		out = append(out, oauth.PageLink{Text: "Terms of service", URL: c.TermsOfServiceURL})
	}
	if c.ContactEmailAddress != "" {
		out = append(out, oauth.PageLink{Text: "Contact", URL: "mailto:" + c.ContactEmailAddress})
	}
	return out
}

// newAccountPages builds the OAuth provider and the account pages.
func (s *Server) newAccountPages() error {
	p, err := oauth.New(oauth.Config{
		Issuer:      s.cfg.PublicURL,
		ServiceDID:  syntax.DID(s.cfg.ServiceDID),
		Secret:      s.cfg.JWTSecret,
		ClientHTTP:  ssrf.NewClient(s.cfg.DisableSSRFProtection, 10*time.Second),
		ServiceName: s.cfg.ServiceName,
		Links:       s.cfg.pageLinks(),
		Logger:      s.log,
	}, oauth.Deps{Store: s.accounts.Store, Accounts: pageAccounts{s.accounts}})
	if err != nil {
		return err
	}
	s.oauth = p
	s.accountPages, err = accountpages.New(accountpages.Deps{Kit: p, Credentials: s.auth, Accounts: s.accounts, Logger: s.log})
	return err
}
