package pds

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleResolveHandle(c echo.Context) error {
	ctx := c.Request().Context()
	h, err := syntax.ParseHandle(strings.TrimSpace(xrpc.ParamString(c, "handle")))
	if err != nil {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidHandle, "Invalid handle")
	}
	handle := h.Normalize()
	// Deactivated and taken-down accounts do not resolve, as in the reference.
	if acct, err := s.accounts.AccountByHandle(ctx, handle.String()); err == nil && acct.Active() {
		return c.JSON(http.StatusOK, map[string]string{"did": acct.DID.String()})
	} else if err != nil && !errors.Is(err, accountstore.ErrNotFound) {
		return err
	}
	if s.cfg.IsServiceHandle(handle.String()) {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameHandleNotFound, "Unable to resolve handle")
	}
	// Resolution only (DNS, then HTTPS well-known), as the reference: the DID document need not agree.
	did, err := s.accounts.ResolveHandle(ctx, handle, false)
	if err != nil {
		return xrpc.InvalidRequest("Unable to resolve handle")
	}
	return c.JSON(http.StatusOK, map[string]string{"did": did.String()})
}

func (s *Server) handleUpdateHandle(c echo.Context) error {
	var in struct {
		Handle string `json:"handle"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.ChangeHandle(c.Request().Context(), acct, in.Handle); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// recommendedCredentials is what this server wants in the account's DID document.
type recommendedCredentials struct {
	AlsoKnownAs         []string               `json:"alsoKnownAs,omitempty"`
	VerificationMethods map[string]string      `json:"verificationMethods"`
	RotationKeys        []string               `json:"rotationKeys"`
	Services            map[string]plc.Service `json:"services"`
}

func (s *Server) recommendedCredentials(acct *accountstore.Account) (*recommendedCredentials, error) {
	key, err := accounts.SigningDIDKey(acct)
	if err != nil {
		return nil, err
	}
	out := &recommendedCredentials{
		VerificationMethods: map[string]string{plc.VerificationMethodAtproto: key},
		RotationKeys:        []string{s.accounts.RotationDIDKey()},
		Services: map[string]plc.Service{
			plc.ServiceAtprotoPDS: {Type: plc.ServiceTypeAtprotoPDS, Endpoint: s.cfg.PublicURL},
		},
	}
	if acct.Handle != "" {
		out.AlsoKnownAs = []string{"at://" + acct.Handle}
	}
	if s.cfg.RecoveryDIDKey != "" {
		out.RotationKeys = append([]string{s.cfg.RecoveryDIDKey}, out.RotationKeys...)
	}
	return out, nil
}

func (s *Server) handleGetRecommendedDidCredentials(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	out, err := s.recommendedCredentials(acct)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleRequestPlcOperationSignature(c echo.Context) error {
	acct, err := s.accounts.PLCAccount(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.SendEmailToken(c.Request().Context(), acct, accountstore.PurposePLCOperation); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

type signPlcOperationInput struct {
	Token               string                  `json:"token"`
	RotationKeys        *[]string               `json:"rotationKeys"`
	AlsoKnownAs         *[]string               `json:"alsoKnownAs"`
	VerificationMethods *map[string]string      `json:"verificationMethods"`
	Services            *map[string]plc.Service `json:"services"`
}

func (s *Server) handleSignPlcOperation(c echo.Context) error {
	ctx := c.Request().Context()
	var in signPlcOperationInput
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.PLCAccount(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	op, err := s.accounts.SignPLCOperation(ctx, acct, in.Token, func(op *plc.Operation) {
		if in.RotationKeys != nil {
			op.RotationKeys = *in.RotationKeys
		}
		if in.AlsoKnownAs != nil {
			op.AlsoKnownAs = *in.AlsoKnownAs
		}
		if in.VerificationMethods != nil {
			op.VerificationMethods = *in.VerificationMethods
		}
		if in.Services != nil {
			op.Services = *in.Services
		}
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"operation": op})
}

func (s *Server) handleSubmitPlcOperation(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Operation json.RawMessage `json:"operation"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.PLCAccount(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	parsed, err := plc.ParseOperation(in.Operation)
	if err != nil {
		return xrpc.InvalidRequest("Invalid operation")
	}
	op, ok := parsed.(*plc.Operation)
	if !ok || op.Validate() != nil {
		return xrpc.InvalidRequest("Invalid operation")
	}
	if err := s.accounts.SubmitPLCOperation(ctx, acct, op); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
