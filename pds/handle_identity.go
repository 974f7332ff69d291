package pds

import (
	"context"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleResolveHandle(c echo.Context) error {
	ctx := c.Request().Context()
	h, err := syntax.ParseHandle(xrpc.ParamString(c, "handle"))
	if err != nil {
		return xrpc.InvalidRequest("Invalid handle")
	}
	handle := h.Normalize()
	if acct, err := s.accounts.AccountByHandle(ctx, handle.String()); err == nil {
		return c.JSON(http.StatusOK, map[string]string{"did": acct.DID})
	}
	if s.cfg.IsServiceHandle(handle.String()) {
		return xrpc.InvalidRequest("Unable to resolve handle")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Resolution only (DNS / well-known), as the reference does: the DID document need not agree.
	if r, ok := s.dir.(interface {
		ResolveHandle(context.Context, syntax.Handle) (syntax.DID, error)
	}); ok {
		did, err := r.ResolveHandle(ctx, handle)
		if err != nil {
			return xrpc.InvalidRequest("Unable to resolve handle")
		}
		return c.JSON(http.StatusOK, map[string]string{"did": did.String()})
	}
	ident, err := s.dir.LookupHandle(ctx, handle)
	if err != nil {
		return xrpc.InvalidRequest("Unable to resolve handle")
	}
	return c.JSON(http.StatusOK, map[string]string{"did": ident.DID.String()})
}
