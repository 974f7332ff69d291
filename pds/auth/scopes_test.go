package auth

import (
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/xrpc"
)

// The Require* checks: no-ops for legacy callers (and none), the reference's refusal for OAuth grants.
func TestRequireChecks(t *testing.T) {
	legacy := &Caller{DID: "did:plc:ewvi7nxzyoun6zhxrhs64oiz", Scope: ScopeAppPass}
	var none *Caller
	set, err := scope.Parse("atproto repo:app.bsky.feed.post?action=create blob:image/* account:email identity:handle rpc:app.bsky.feed.getTimeline?aud=did:web:api.example.com%23bsky_appview")
	if err != nil {
		t.Fatal(err)
	}
	oauth := &Caller{DID: legacy.DID, Scope: set.String(), Permissions: set}
	only, _ := scope.Parse("atproto")
	bare := &Caller{DID: legacy.DID, Scope: "atproto", Permissions: only}
	if legacy.IsOAuth() || none.IsOAuth() || !oauth.IsOAuth() {
		t.Fatal("IsOAuth")
	}

	type check struct {
		name   string
		run    func(c *Caller) error
		ok     bool   // allowed to the oauth caller above
		needed string // the scope its refusal names
	}
	checks := []check{
		{"repo create", func(c *Caller) error { return c.RequireRepo("app.bsky.feed.post", scope.ActionCreate) }, true, ""},
		{"repo delete", func(c *Caller) error { return c.RequireRepo("app.bsky.feed.post", scope.ActionDelete) }, false, "repo:app.bsky.feed.post?action=delete"},
		{"repo other", func(c *Caller) error { return c.RequireRepo("app.bsky.feed.like", scope.ActionCreate) }, false, "repo:app.bsky.feed.like?action=create"},
		{"blob", func(c *Caller) error { return c.RequireBlob("image/png; charset=x") }, true, ""},
		{"blob other", func(c *Caller) error { return c.RequireBlob("Video/MP4") }, false, "blob:video/mp4"},
		{"rpc", func(c *Caller) error {
			return c.RequireRPC("app.bsky.feed.getTimeline", "did:web:api.example.com#bsky_appview")
		}, true, ""},
		{"rpc other aud", func(c *Caller) error { return c.RequireRPC("app.bsky.feed.getTimeline", "did:web:api.example.com") }, false,
			"rpc:app.bsky.feed.getTimeline?aud=did:web:api.example.com"},
		{"account read", func(c *Caller) error { return c.RequireAccount("email", scope.ActionRead) }, true, ""},
		{"account manage", func(c *Caller) error { return c.RequireAccount("email", scope.ActionManage) }, false, "account:email?action=manage"},
		{"account status", func(c *Caller) error { return c.RequireAccount("status", scope.ActionRead) }, false, "account:status"},
		{"identity handle", func(c *Caller) error { return c.RequireIdentity("handle") }, true, ""},
		{"identity all", func(c *Caller) error { return c.RequireIdentity("*") }, false, "identity:*"},
	}
	for _, c := range checks {
		if err := c.run(legacy); err != nil {
			t.Errorf("%s: legacy caller refused: %v", c.name, err)
		}
		if err := c.run(none); err != nil {
			t.Errorf("%s: no caller refused: %v", c.name, err)
		}
		err := c.run(oauth)
		if c.ok {
			if err != nil {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			// atproto alone allows none of them.
			if err := c.run(bare); !isXRPCError(err, xrpc.NameScopeMissing) {
				t.Errorf("%s: atproto-only caller: %v", c.name, err)
			}
			continue
		}
		xe, ok := err.(*xrpc.Error)
		if !ok || xe.Status != 403 || xe.Name != xrpc.NameScopeMissing || xe.Message != `Missing required scope "`+c.needed+`"` {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if err := oauth.RefuseOAuth(); !isXRPCError(err, xrpc.NameForbidden) || legacy.RefuseOAuth() != nil {
		t.Errorf("RefuseOAuth: %v / %v", err, legacy.RefuseOAuth())
	}
	if !legacy.AllowsAccount("email", scope.ActionRead) || bare.AllowsAccount("email", scope.ActionRead) {
		t.Error("AllowsAccount")
	}
}

// A session token carrying cnf (an OAuth token sent as Bearer) or lxm is refused.
func TestLegacyTokenClaims(t *testing.T) {
	v := New(Config{JWTSecret: []byte("test-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}, nil, fakeTakedowns{})
	did := syntax.DID("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
	sign := func(extra func(*sessionClaims)) string {
		tok, _ := v.accessToken(did, ScopeAccess, time.Now())
		if extra == nil {
			return tok
		}
		c, err := v.parseToken(tok, typAccess)
		if err != nil {
			t.Fatal(err)
		}
		extra(c)
		s, err := v.signToken(typAccess, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := v.Authenticate(request("Bearer "+sign(nil)), Standard); err != nil {
		t.Fatalf("control: %v", err)
	}
	for name, f := range map[string]func(*sessionClaims){
		"cnf": func(c *sessionClaims) { c.Cnf = map[string]any{"jkt": "abc"} },
		"lxm": func(c *sessionClaims) { c.Lxm = "com.atproto.repo.createRecord" },
	} {
		if _, err := v.Authenticate(request("Bearer "+sign(f)), Standard); !isXRPCError(err, xrpc.NameInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMiddlewareKinds(t *testing.T) {
	v := &Verifier{}
	rules := []echo.MiddlewareFunc{AnyOAuth(), NoOAuth(), Account("email", "read"), Identity("*"), CheckedInHandler(),
		RPC("x.y.z", func(echo.Context) string { return "" }), Authorize(func(echo.Context, *Caller) error { return nil })}
	for i, mw := range rules {
		if !IsOAuthRule(mw) || RequiresAuth(mw) {
			t.Errorf("rule %d not recognised as a rule", i)
		}
	}
	for _, l := range []Level{Standard, Full, Takendown, FullTakendown} {
		if mw := v.RequireAuth(l); !RequiresAuth(mw) || IsOAuthRule(mw) {
			t.Errorf("RequireAuth(%v) not recognised", l)
		}
	}
	if RequiresAuth(v.OptionalAuth) || IsOAuthRule(v.OptionalAuth) {
		t.Error("OptionalAuth taken for RequireAuth or a rule")
	}
}
