package accounts

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// The account's own settings changes, as the account pages (and the matching XRPC handlers) make them.

// ErrWrongPassword: the current password given to ChangePassword is not the account's.
var ErrWrongPassword = errors.New("accounts: wrong password")

// ChangePassword sets a new password after checking the current one; every refresh token of the account is
// revoked with it (SetPassword). OAuth sessions are the caller's to end.
func (s *Service) ChangePassword(ctx context.Context, did syntax.DID, current, next string) error {
	if next == "" || len(next) > MaxPasswordLength {
		return xrpc.InvalidRequest("Invalid password length.")
	}
	acct, err := s.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	if !VerifyPassword(current, acct.PasswordHash) {
		return ErrWrongPassword
	}
	return s.SetPassword(ctx, acct.DID, next)
}

// RequestPasswordReset mails a reset token to the account whose address is email (accountstore.ErrNotFound
// when there is none).
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	acct, err := s.AccountByEmail(ctx, strings.TrimSpace(email))
	if err != nil {
		return err
	}
	return s.SendEmailToken(ctx, acct, accountstore.PurposeResetPassword)
}

// ResetPassword uses a mailed reset token to set a new password and returns whose it was. Token errors are
// the XRPC errors of EmailTokenError.
func (s *Service) ResetPassword(ctx context.Context, token, password string) (syntax.DID, error) {
	if password == "" || len(password) > MaxPasswordLength {
		return "", xrpc.InvalidRequest("Invalid password length.")
	}
	did, err := s.ConsumeEmailTokenByValue(ctx, accountstore.PurposeResetPassword, token)
	if err != nil {
		return "", xrpcerr.EmailToken(err)
	}
	if err := s.SetPassword(ctx, did, password); err != nil {
		return "", err
	}
	return syntax.DID(did), nil
}

// RequestEmailConfirmation mails a token that confirms the account's address.
func (s *Service) RequestEmailConfirmation(ctx context.Context, did syntax.DID) error {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	return s.SendEmailToken(ctx, acct, accountstore.PurposeConfirmEmail)
}

// ConfirmEmail marks the account's address confirmed with a mailed token.
func (s *Service) ConfirmEmail(ctx context.Context, did syntax.DID, token string) error {
	if err := s.ConsumeEmailToken(ctx, did, accountstore.PurposeConfirmEmail, token); err != nil {
		return xrpcerr.EmailToken(err)
	}
	return s.SetEmailConfirmed(ctx, did, time.Now())
}

// RequestEmailUpdate starts an address change: a confirmed address must prove it is still the owner's, so a
// token goes to it (tokenRequired); an unconfirmed one needs none.
func (s *Service) RequestEmailUpdate(ctx context.Context, did syntax.DID) (tokenRequired bool, err error) {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return false, err
	}
	if acct.Email == "" {
		return false, xrpc.InvalidRequest("account does not have an email address")
	}
	if acct.EmailConfirmedAt == nil {
		return false, nil
	}
	return true, s.SendEmailToken(ctx, acct, accountstore.PurposeUpdateEmail)
}

// ChangeEmail sets a new address (unconfirmed), with the token RequestEmailUpdate mailed when the current one is
// confirmed. The token is checked, not used up, before the address is known to be free.
func (s *Service) ChangeEmail(ctx context.Context, did syntax.DID, email, token string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if !ValidEmail(email) {
		return xrpc.InvalidRequest("This email address is not supported, please use a different email.")
	}
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	if acct.EmailConfirmedAt != nil {
		if token == "" {
			return xrpc.NewError(http.StatusBadRequest, "TokenRequired", "confirmation token required")
		}
		if err := s.CheckEmailToken(ctx, acct.DID, accountstore.PurposeUpdateEmail, token); err != nil {
			return xrpcerr.EmailToken(err)
		}
	}
	if err := s.UpdateEmail(ctx, acct.DID, email); err != nil {
		if errors.Is(err, accountstore.ErrEmailTaken) {
			return xrpc.InvalidRequest("This email address is already in use, please use a different email.")
		}
		return err
	}
	return nil
}

// ServiceHandleDomains are the domains (each starting with ".") under which this server gives out handles.
func (s *Service) ServiceHandleDomains() []string { return s.cfg.ServiceHandleDomains }

// CheckHandle checks, live, that handle can be did's: a service-domain handle that meets the rules, or a
// custom domain whose DNS TXT record or HTTPS well-known file names did now. It returns the normalized handle.
func (s *Service) CheckHandle(ctx context.Context, did syntax.DID, handle string) (string, error) {
	return s.validateHandle(ctx, handle, did)
}

// SetHandle is ChangeHandle for the account did.
func (s *Service) SetHandle(ctx context.Context, did syntax.DID, handle string) error {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	return s.ChangeHandle(ctx, acct, handle)
}

// SignInFactor is the second step of a sign-in with the account password when the account has two-factor
// sign-in by email: without a code it mails one and answers 401 AuthFactorTokenRequired; with one it uses it up
// (InvalidToken / ExpiredToken when it is wrong or old). Accounts without it pass.
func (s *Service) SignInFactor(ctx context.Context, acct *accountstore.Account, code string) error {
	if !acct.EmailAuthFactor {
		return nil
	}
	if strings.TrimSpace(code) == "" {
		if err := s.SendEmailToken(ctx, acct, accountstore.PurposeSignIn); err != nil {
			return err
		}
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthFactorTokenRequired, "A sign in code has been sent to your email address")
	}
	if err := s.ConsumeEmailToken(ctx, acct.DID, accountstore.PurposeSignIn, code); err != nil {
		return xrpcerr.EmailToken(err)
	}
	return nil
}

// CheckSignInCode uses up did's mailed sign-in code (the pages' second step, after the password was checked).
func (s *Service) CheckSignInCode(ctx context.Context, did syntax.DID, code string) error {
	if err := s.ConsumeEmailToken(ctx, did, accountstore.PurposeSignIn, code); err != nil {
		return xrpcerr.EmailToken(err)
	}
	return nil
}

// SetTwoFactor turns two-factor sign-in by email on (only for a confirmed address: the codes must arrive) or off.
func (s *Service) SetTwoFactor(ctx context.Context, did syntax.DID, on bool) error {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	if on && (acct.Email == "" || acct.EmailConfirmedAt == nil) {
		return xrpc.InvalidRequest("Confirm your email address before turning on sign-in codes by email.")
	}
	return s.SetEmailAuthFactor(ctx, acct.DID, on)
}
