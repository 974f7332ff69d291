package pds

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
)

// Email subjects, as the reference's mail templates.
const (
	subjectConfirmEmail  = "Email Confirmation"
	subjectUpdateEmail   = "Email Update Requested"
	subjectResetPassword = "Password Reset Requested"
	subjectDeleteAccount = "Account Deletion Requested"
	subjectPLCOperation  = "PLC Update Operation Requested"
)

var tokenPurposeText = map[accountstore.TokenPurpose]string{
	accountstore.PurposeConfirmEmail:  "confirm your email address",
	accountstore.PurposeUpdateEmail:   "change the email address of your account",
	accountstore.PurposeResetPassword: "reset your password",
	accountstore.PurposeDeleteAccount: "delete your account",
	accountstore.PurposePLCOperation:  "sign an update of your account's identity (PLC operation)",
}

// sendEmailToken creates a token for acct and purpose (replacing an earlier one) and mails it to the account's
// address. A failed send is an error for the caller: the user would otherwise wait for a token that never comes.
func (s *Server) sendEmailToken(ctx context.Context, acct *accountstore.Account, purpose accountstore.TokenPurpose, subject string) error {
	if acct.Email == "" {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	token, err := s.accounts.CreateEmailToken(ctx, acct.DID, purpose)
	if err != nil {
		return err
	}
	what := tokenPurposeText[purpose]
	if what == "" {
		what = string(purpose)
	}
	text := fmt.Sprintf("Hello %s,\n\nUse this code to %s on %s:\n\n    %s\n\n"+
		"The code is valid for %d minutes and can be used once. If you did not ask for it, ignore this email.\n",
		acct.Handle, what, s.cfg.Hostname, token, int(accountstore.EmailTokenTTL/time.Minute))
	htmlBody := fmt.Sprintf("<p>Hello %s,</p><p>Use this code to %s on %s:</p><p><strong style=\"font-family:monospace;font-size:1.4em\">%s</strong></p>"+
		"<p>The code is valid for %d minutes and can be used once. If you did not ask for it, ignore this email.</p>",
		html.EscapeString(acct.Handle), html.EscapeString(what), html.EscapeString(s.cfg.Hostname), token,
		int(accountstore.EmailTokenTTL/time.Minute))
	return s.sendMail(ctx, acct.Email, subject, text, htmlBody)
}

// sendMail sends one message and turns a failure into a 502 for the client (the details go to the log).
func (s *Server) sendMail(ctx context.Context, to, subject, text, htmlBody string) error {
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.mailer.Send(sendCtx, to, subject, text, htmlBody); err != nil {
		s.log.Error("sending email failed", "subject", subject, "err", err)
		return xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "Could not send email")
	}
	return nil
}

// emailTokenError maps the store's token errors to the reference's XRPC errors.
func emailTokenError(err error) error {
	switch {
	case errors.Is(err, accountstore.ErrInvalidToken):
		return xrpc.NewError(http.StatusBadRequest, "InvalidToken", "Token is invalid")
	case errors.Is(err, accountstore.ErrExpiredToken):
		return xrpc.NewError(http.StatusBadRequest, "ExpiredToken", "Token is expired")
	}
	return err
}

// validEmail is the createAccount check: one plain address with a dot in it.
func validEmail(email string) bool {
	addr, err := mail.ParseAddress(email)
	return err == nil && addr.Address == email && strings.Contains(email, ".") && len(email) <= 254
}

// viewerAccount loads the authenticated caller's account.
func (s *Server) handleRequestEmailConfirmation(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.sendEmailToken(c.Request().Context(), acct, accountstore.PurposeConfirmEmail, subjectConfirmEmail); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleConfirmEmail(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Email string `json:"email"`
		Token string `json:"token"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if !strings.EqualFold(acct.Email, strings.TrimSpace(in.Email)) {
		return xrpc.NewError(http.StatusBadRequest, "InvalidEmail", "invalid email")
	}
	if err := s.accounts.ConsumeEmailToken(ctx, acct.DID, accountstore.PurposeConfirmEmail, in.Token); err != nil {
		return emailTokenError(err)
	}
	if err := s.accounts.SetEmailConfirmed(ctx, acct.DID, time.Now()); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleRequestEmailUpdate(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if acct.Email == "" {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	// Only a confirmed address has to prove it is still the owner's; the token goes to the current address.
	tokenRequired := acct.EmailConfirmedAt != nil
	if tokenRequired {
		if err := s.sendEmailToken(c.Request().Context(), acct, accountstore.PurposeUpdateEmail, subjectUpdateEmail); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, map[string]bool{"tokenRequired": tokenRequired})
}

func (s *Server) handleUpdateEmail(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Email           string `json:"email"`
		EmailAuthFactor *bool  `json:"emailAuthFactor"`
		Token           string `json:"token"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if !validEmail(email) {
		return xrpc.InvalidRequest("This email address is not supported, please use a different email.")
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if acct.EmailConfirmedAt != nil {
		if in.Token == "" {
			return xrpc.NewError(http.StatusBadRequest, "TokenRequired", "confirmation token required")
		}
		// Checked, not used up: an address already taken must not burn the token.
		if err := s.accounts.CheckEmailToken(ctx, acct.DID, accountstore.PurposeUpdateEmail, in.Token); err != nil {
			return emailTokenError(err)
		}
	}
	if err := s.accounts.UpdateEmail(ctx, acct.DID, email); err != nil {
		if errors.Is(err, accountstore.ErrEmailTaken) {
			return xrpc.InvalidRequest("This email address is already in use, please use a different email.")
		}
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleRequestPasswordReset(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Email string `json:"email"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.AccountByEmail(ctx, strings.TrimSpace(in.Email))
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	if err != nil {
		return err
	}
	if err := s.sendEmailToken(ctx, acct, accountstore.PurposeResetPassword, subjectResetPassword); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleResetPassword(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.Password == "" || len(in.Password) > maxPasswordLength {
		return xrpc.InvalidRequest("Invalid password length.")
	}
	did, err := s.accounts.ConsumeEmailTokenByValue(ctx, accountstore.PurposeResetPassword, in.Token)
	if err != nil {
		return emailTokenError(err)
	}
	if err := s.setPassword(ctx, did, in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// maxPasswordLength is the reference's limit for new passwords.
const maxPasswordLength = 256

// setPassword changes an account's password and revokes every session (resetPassword, admin update).
func (s *Server) setPassword(ctx context.Context, did, password string) error {
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return err
	}
	if err := s.accounts.UpdatePassword(ctx, did, hash); err != nil {
		if errors.Is(err, accountstore.ErrNotFound) {
			return xrpc.NewError(http.StatusBadRequest, "AccountNotFound", "Account not found")
		}
		return err
	}
	return nil
}
