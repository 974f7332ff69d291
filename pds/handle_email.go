package pds

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleRequestEmailConfirmation(c echo.Context) error {
	if err := s.accounts.RequestEmailConfirmation(c.Request().Context(), auth.CallerOf(c).DID); err != nil {
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
	tokenRequired, err := s.accounts.RequestEmailUpdate(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
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
	did := auth.CallerOf(c).DID
	if err := s.accounts.ChangeEmail(ctx, did, in.Email, in.Token); err != nil {
		return err
	}
	if in.EmailAuthFactor != nil {
		if err := s.accounts.SetTwoFactor(ctx, did, *in.EmailAuthFactor); err != nil {
			return err
		}
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
	err := s.accounts.RequestPasswordReset(ctx, in.Email)
	if err != nil {
		return xrpcerr.PasswordResetAccount(err)
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
	if _, err := s.accounts.ResetPassword(ctx, in.Token, in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
