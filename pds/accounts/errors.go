package accounts

import (
	"errors"
	"net/http"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// The mapping of this package's store and directory errors to XRPC errors.

// NotFound is the error for an account that does not exist.
func NotFound() error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
}

// lookupError maps an account lookup failure: accountstore.ErrNotFound is AccountNotFound.
func lookupError(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return NotFound()
	}
	return err
}

// plcError turns a PLC directory failure into an XRPC error: a refusal (4xx) is the client's problem and carries
// the directory's message; anything else is an upstream failure (logged).
func (s *Service) plcError(err error) error {
	var pe *plc.Error
	if errors.As(err, &pe) && pe.StatusCode >= 400 && pe.StatusCode < 500 {
		return xrpc.InvalidRequest("The PLC directory refused the operation: %s", pe.Message)
	}
	s.log.Error("PLC directory request failed", "err", err)
	return xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "The PLC directory could not be reached")
}

func invalidHandle(msg string) error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidHandle, "%s", msg)
}

// EmailTokenError maps the store's token errors to the reference's XRPC errors.
func EmailTokenError(err error) error {
	switch {
	case errors.Is(err, accountstore.ErrInvalidToken):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Token is invalid")
	case errors.Is(err, accountstore.ErrExpiredToken):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token is expired")
	}
	return err
}

// InviteError maps the store's invite errors.
func InviteError(err error) error {
	switch {
	case errors.Is(err, accountstore.ErrCannotDisableAdminCodes):
		return xrpc.InvalidRequest("cannot disable admin invite codes")
	case errors.Is(err, accountstore.ErrInvalidCursor):
		return xrpc.InvalidRequest("Malformed cursor")
	case errors.Is(err, accountstore.ErrNotFound):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
	}
	return err
}
