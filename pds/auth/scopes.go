package auth

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/xrpc"
)

// The per-method permission checks of OAuth callers, as the reference PDS's `authorize: (permissions) => ...`
// callbacks make them. Every Require* is a no-op for legacy callers (session tokens, app passwords), whose
// access the Level of the route already decided, and for a nil caller (routes with optional auth).

// scopeMissing is the reference's ScopeMissingError: 403, `Missing required scope "<scope>"`.
func scopeMissing(needed string) error {
	return xrpc.NewError(http.StatusForbidden, xrpc.NameScopeMissing, "Missing required scope %q", needed)
}

// IsOAuth reports whether the caller authenticated with an OAuth access token.
func (c *Caller) IsOAuth() bool { return c != nil && c.Permissions != nil }

// RequireRepo checks that an OAuth caller may create, update or delete (action) records of collection.
func (c *Caller) RequireRepo(collection, action string) error {
	if !c.IsOAuth() {
		return nil
	}
	if c.Permissions.AllowsRepo(syntax.NSID(collection), action) {
		return nil
	}
	return scopeMissing(fmt.Sprintf("repo:%s?action=%s", collection, action))
}

// RequireBlob checks that an OAuth caller may upload a blob declared as mimeType (the request's Content-Type,
// as the reference checks it, before any byte is read).
func (c *Caller) RequireBlob(mimeType string) error {
	if !c.IsOAuth() {
		return nil
	}
	if c.Permissions.AllowsBlob(mimeType) {
		return nil
	}
	mt := strings.ToLower(strings.TrimSpace(strings.Split(mimeType, ";")[0]))
	return scopeMissing("blob:" + mt)
}

// RequireRPC checks that an OAuth caller may call lxm on the service aud ("did:...#service_id" for proxied
// calls, the bare DID getServiceAuth names); lxm "*" is a service token for any method.
func (c *Caller) RequireRPC(lxm, aud string) error {
	if !c.IsOAuth() {
		return nil
	}
	if c.Permissions.AllowsRPC(syntax.NSID(lxm), aud) {
		return nil
	}
	return scopeMissing(fmt.Sprintf("rpc:%s?aud=%s", lxm, aud))
}

// RequireAccount checks that an OAuth caller has action ("read" or "manage") on an account attribute ("email",
// "repo", "status").
func (c *Caller) RequireAccount(attr, action string) error {
	if !c.IsOAuth() {
		return nil
	}
	if c.Permissions.AllowsAccount(attr, action) {
		return nil
	}
	if action == scope.ActionRead {
		return scopeMissing("account:" + attr)
	}
	return scopeMissing(fmt.Sprintf("account:%s?action=%s", attr, action))
}

// RequireIdentity checks that an OAuth caller controls an identity attribute ("handle", or "*").
func (c *Caller) RequireIdentity(attr string) error {
	if !c.IsOAuth() {
		return nil
	}
	if c.Permissions.AllowsIdentity(attr) {
		return nil
	}
	return scopeMissing("identity:" + attr)
}

// RefuseOAuth refuses OAuth callers outright: the methods the reference keeps to password sessions (app
// passwords, invite codes, account deletion requests).
func (c *Caller) RefuseOAuth() error {
	if !c.IsOAuth() {
		return nil
	}
	return xrpc.Forbidden("OAuth credentials are not supported for this endpoint")
}

// AllowsAccount reports whether the caller may see (read) or change (manage) an account attribute: always for
// legacy callers.
func (c *Caller) AllowsAccount(attr, action string) bool {
	return c.RequireAccount(attr, action) == nil
}

// Authorize is a route middleware (after RequireAuth) running check on the request's caller: the route
// table's way of stating a method's OAuth permission. check sees legacy callers too; the Require* methods
// let them through.
func Authorize(check func(c echo.Context, caller *Caller) error) echo.MiddlewareFunc {
	return oauthRule{check}.middleware
}

// oauthRule is a route's OAuth permission check; Authorize hands out its method value, so IsOAuthRule can tell
// a rule from the route's other middleware.
type oauthRule struct {
	check func(c echo.Context, caller *Caller) error
}

func (r oauthRule) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := r.check(c, CallerOf(c)); err != nil {
			return err
		}
		return next(c)
	}
}

// oauthRulePC is the code of every oauthRule middleware (a method value's code does not depend on its receiver).
var oauthRulePC = reflect.ValueOf(oauthRule{}.middleware).Pointer()

// IsOAuthRule reports whether mw is an OAuth permission rule (Authorize and the helpers below): the route
// table's guard test requires one on every route that takes an access token.
func IsOAuthRule(mw echo.MiddlewareFunc) bool { return reflect.ValueOf(mw).Pointer() == oauthRulePC }

// Route middlewares for the static checks of the route table.

// Account requires account:<attr>?action=<action>.
func Account(attr, action string) echo.MiddlewareFunc {
	return Authorize(func(_ echo.Context, c *Caller) error { return c.RequireAccount(attr, action) })
}

// Identity requires identity:<attr>.
func Identity(attr string) echo.MiddlewareFunc {
	return Authorize(func(_ echo.Context, c *Caller) error { return c.RequireIdentity(attr) })
}

// NoOAuth refuses OAuth callers.
func NoOAuth() echo.MiddlewareFunc {
	return Authorize(func(_ echo.Context, c *Caller) error { return c.RefuseOAuth() })
}

// AnyOAuth states that every OAuth grant may call the method (the reference's "always allow").
func AnyOAuth() echo.MiddlewareFunc {
	return Authorize(func(echo.Context, *Caller) error { return nil })
}

// CheckedInHandler states that the handler checks the OAuth permission itself, because it depends on the body
// (record writes: repo:<collection>) or on the call's target (proxied calls: rpc:, checked by pds/proxy).
func CheckedInHandler() echo.MiddlewareFunc {
	return Authorize(func(echo.Context, *Caller) error { return nil })
}

// RPC requires rpc:<lxm>?aud=<aud(c)>.
func RPC(lxm string, aud func(c echo.Context) string) echo.MiddlewareFunc {
	return Authorize(func(e echo.Context, c *Caller) error { return c.RequireRPC(lxm, aud(e)) })
}
