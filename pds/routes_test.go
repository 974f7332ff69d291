package pds_test

import (
	"slices"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/auth"
)

// TestRoutesDeclareOAuthRules guards the route table: every XRPC method that takes an access token (RequireAuth)
// states, after it, the OAuth permission it needs (an auth.Authorize rule: auth.Account, Identity, NoOAuth,
// AnyOAuth, RPC, or CheckedInHandler where the handler checks the body or target). A new route without one
// would let every OAuth grant call it; this test fails instead.
func TestRoutesDeclareOAuthRules(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	methods := pds.XRPCMethodsForTest(p.Server)
	authed, withRule := 0, 0
	for _, m := range methods {
		at := slices.IndexFunc(m.Middleware, auth.RequiresAuth)
		rule := slices.IndexFunc(m.Middleware, auth.IsOAuthRule)
		if rule >= 0 {
			withRule++
		}
		if at < 0 {
			continue
		}
		authed++
		switch {
		case rule < 0:
			t.Errorf("%s takes an access token but declares no OAuth rule (pds/routes.go; see docs/oauth.md)", m.NSID)
		case rule < at:
			t.Errorf("%s: its OAuth rule runs before RequireAuth (no caller yet)", m.NSID)
		}
	}
	// The guard must see the table: the authenticated methods are many, and the rules recognised.
	if authed < 30 || withRule < authed {
		t.Fatalf("%d methods, %d with RequireAuth, %d with an OAuth rule: the guard does not recognise the middleware", len(methods), authed, withRule)
	}
}
