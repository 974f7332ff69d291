package pds

import (
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// Account status and deletion endpoints (com.atproto.server.*Account).

func (s *Server) handleActivateAccount(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.Activate(c.Request().Context(), acct); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleDeactivateAccount(c echo.Context) error {
	var in struct {
		DeleteAfter string `json:"deleteAfter"`
	}
	if c.Request().ContentLength != 0 { // every field is optional: no body is an empty input
		if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
			return err
		}
	}
	var deleteAfter *time.Time
	if in.DeleteAfter != "" {
		dt, err := syntax.ParseDatetimeLenient(in.DeleteAfter)
		if err != nil {
			return xrpc.InvalidRequest("deleteAfter must be a datetime")
		}
		t := dt.Time()
		deleteAfter = &t
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.Deactivate(c.Request().Context(), acct, deleteAfter); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleRequestAccountDelete(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.SendEmailToken(c.Request().Context(), acct, accountstore.PurposeDeleteAccount); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleDeleteAccount(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		DID      string `json:"did"`
		Password string `json:"password"`
		Token    string `json:"token"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.AccountByDID(ctx, syntax.DID(in.DID))
	if err != nil {
		return xrpcerr.DeleteAccount(err)
	}
	if len(in.Password) > 512 || !accounts.VerifyPassword(in.Password, acct.PasswordHash) {
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Invalid did or password")
	}
	// The token goes with the account row; checking it is enough.
	if err := s.accounts.CheckEmailToken(ctx, acct.DID, accountstore.PurposeDeleteAccount, in.Token); err != nil {
		return xrpcerr.EmailToken(err)
	}
	if err := s.accounts.Delete(ctx, acct.DID); err != nil {
		return xrpcerr.DeleteAccount(err) // not found: deleted concurrently
	}
	return c.NoContent(http.StatusOK)
}
