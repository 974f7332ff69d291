package pds

import (
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/proxy"
	"github.com/pdsgo/pds/xrpc"
)

// Limits of com.atproto.server.getServiceAuth (the reference's).
const (
	serviceAuthMaxTTL         = time.Hour   // with lxm
	serviceAuthMaxTTLNoMethod = time.Minute // a token good for any method
)

// handleGetServiceAuth signs a service-auth token for the caller, for a service of the caller's choosing
// (account migration, video upload...). Protected methods are never granted, privileged ones only to
// privileged sessions, and a taken-down account only gets a token to create its account elsewhere.
func (s *Server) handleGetServiceAuth(c echo.Context) error {
	ctx := c.Request().Context()
	v := auth.CallerOf(c)
	aud := xrpc.ParamString(c, "aud")
	lxm := xrpc.ParamString(c, "lxm")
	if !validServiceAudience(aud) {
		return xrpc.InvalidRequest("aud must be a valid atproto DID or did#serviceId reference")
	}
	if v.Scope == auth.ScopeTakendown && lxm != "com.atproto.server.createAccount" {
		return xrpc.InvalidToken("Bad token scope")
	}
	if lxm != "" && proxy.IsPrivilegedMethod(lxm) && v.Scope == auth.ScopeAppPass {
		return xrpc.InvalidRequest("insufficient access to request a service auth token for the following method: %s", lxm)
	}
	var exp time.Time
	if xrpc.ParamPresent(c, "exp") {
		exp = time.Unix(int64(xrpc.ParamInt(c, "exp", 0)), 0)
		diff := time.Until(exp)
		switch {
		case diff < 0:
			return xrpc.NewError(http.StatusBadRequest, xrpc.NameBadExpiration, "expiration is in past")
		case diff > serviceAuthMaxTTL:
			return xrpc.NewError(http.StatusBadRequest, xrpc.NameBadExpiration, "cannot request a token with an expiration more than an hour in the future")
		case lxm == "" && diff > serviceAuthMaxTTLNoMethod:
			return xrpc.NewError(http.StatusBadRequest, xrpc.NameBadExpiration, "cannot request a method-less token with an expiration more than a minute in the future")
		}
	}
	if lxm != "" && proxy.IsProtectedMethod(lxm) {
		return xrpc.InvalidRequest("cannot request a service auth token for the following protected method: %s", lxm)
	}
	acct, err := s.accounts.ByDID(ctx, v.DID)
	if err != nil {
		return err
	}
	token, err := s.proxy.ServiceToken(acct, aud, lxm, exp)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"token": token})
}

// validServiceAudience: a did:plc or did:web, optionally with a #service fragment.
func validServiceAudience(aud string) bool {
	did, frag, hasFrag := strings.Cut(aud, "#")
	if hasFrag && (frag == "" || strings.ContainsAny(frag, "#/?% ")) {
		return false
	}
	d, err := syntax.ParseDID(did)
	if err != nil {
		return false
	}
	return d.Method() == "plc" || d.Method() == "web"
}
