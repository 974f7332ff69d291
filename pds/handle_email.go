package pds

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleRequestEmailConfirmation(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.SendEmailToken(c.Request().Context(), acct, accountstore.PurposeConfirmEmail); err != nil {
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
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidEmail, "invalid email")
	}
	if err := s.accounts.ConsumeEmailToken(ctx, acct.DID, accountstore.PurposeConfirmEmail, in.Token); err != nil {
		return xrpcerr.EmailToken(err)
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
		if err := s.accounts.SendEmailToken(c.Request().Context(), acct, accountstore.PurposeUpdateEmail); err != nil {
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
	if !accounts.ValidEmail(email) {
		return xrpc.InvalidRequest("This email address is not supported, please use a different email.")
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if acct.EmailConfirmedAt != nil {
		if in.Token == "" {
			return xrpc.NewError(http.StatusBadRequest, xrpc.NameTokenRequired, "confirmation token required")
		}
		// Checked, not used up: an address already taken must not burn the token.
		if err := s.accounts.CheckEmailToken(ctx, acct.DID, accountstore.PurposeUpdateEmail, in.Token); err != nil {
			return xrpcerr.EmailToken(err)
		}
	}
	if err := s.accounts.UpdateEmail(ctx, acct.DID, email); err != nil {
		return xrpcerr.EmailUpdate(err)
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
	if err != nil {
		return xrpcerr.PasswordResetAccount(err)
	}
	if err := s.accounts.SendEmailToken(ctx, acct, accountstore.PurposeResetPassword); err != nil {
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
	if in.Password == "" || len(in.Password) > accounts.MaxPasswordLength {
		return xrpc.InvalidRequest("Invalid password length.")
	}
	did, err := s.accounts.ConsumeEmailTokenByValue(ctx, accountstore.PurposeResetPassword, in.Token)
	if err != nil {
		return xrpcerr.EmailToken(err)
	}
	if err := s.accounts.SetPassword(ctx, did, in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
