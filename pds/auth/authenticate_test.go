package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

type fakeTakedowns map[syntax.DID]bool

func (f fakeTakedowns) AccountTakendown(_ context.Context, did syntax.DID) (bool, error) {
	return f[did], nil
}

// oauthStub stands in for the OAuth resource server: it accepts one token.
type oauthStub struct{ calls int }

func (o *oauthStub) Verify(r *http.Request, token string, level Level) (*Caller, error) {
	o.calls++
	if token != "good-dpop-token" {
		return nil, errBadStub
	}
	return &Caller{DID: "did:plc:oauthcalleraaaaaaaaaaaaa", Scope: "atproto"}, nil
}

var errBadStub = &stubError{}

type stubError struct{}

func (*stubError) Error() string { return "stub: bad token" }

func request(authz string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/xrpc/com.atproto.server.getSession", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

// Authenticate is the seam: session tokens by scope and level, the takedown check, and a second credential
// kind (DPoP) only when a verifier for it is configured.
func TestAuthenticate(t *testing.T) {
	down := syntax.DID("did:plc:takendownaaaaaaaaaaaaaaa")
	v := New(Config{JWTSecret: []byte("test-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}, nil,
		fakeTakedowns{down: true, "did:plc:oauthcalleraaaaaaaaaaaaa": false})
	did := syntax.DID("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
	full, _ := v.accessToken(did, ScopeAccess, time.Now())
	app, _ := v.accessToken(did, ScopeAppPass, time.Now())
	takenDown, _ := v.accessToken(down, ScopeTakendown, time.Now())

	c, err := v.Authenticate(request("Bearer "+full), Full)
	if err != nil || c.DID != did || c.Scope != ScopeAccess {
		t.Fatalf("full access token: %+v %v", c, err)
	}
	if _, err := v.Authenticate(request("Bearer "+app), Full); !isXRPCError(err, "InvalidToken") {
		t.Fatalf("app password at the full level: %v, want InvalidToken", err)
	}
	if _, err := v.Authenticate(request(""), Standard); !isXRPCError(err, "AuthMissing") {
		t.Fatalf("no credentials: %v, want AuthMissing", err)
	}
	if _, err := v.Authenticate(request("Bearer "+takenDown), Standard); !isXRPCError(err, "InvalidToken") {
		t.Fatalf("takendown scope at the standard level: %v, want InvalidToken", err)
	}
	if c, err := v.Authenticate(request("Bearer "+takenDown), Takendown); err != nil || c.DID != down {
		t.Fatalf("takendown scope where accepted: %+v %v", c, err)
	}
	downFull, _ := v.accessToken(down, ScopeAccess, time.Now())
	if _, err := v.Authenticate(request("Bearer "+downFull), Standard); !isXRPCError(err, "AccountTakedown") {
		t.Fatalf("token of a taken-down account: %v, want AccountTakedown", err)
	}

	// Without an OAuth verifier a DPoP credential is no credential; with one, it decides.
	if _, err := v.Authenticate(request("DPoP good-dpop-token"), Standard); !isXRPCError(err, "AuthMissing") {
		t.Fatalf("DPoP without a verifier: %v, want AuthMissing", err)
	}
	stub := &oauthStub{}
	v.OAuth = stub
	if c, err := v.Authenticate(request("DPoP good-dpop-token"), Standard); err != nil || c.DID != "did:plc:oauthcalleraaaaaaaaaaaaa" {
		t.Fatalf("DPoP with a verifier: %+v %v", c, err)
	}
	if _, err := v.Authenticate(request("DPoP other"), Standard); err != errBadStub {
		t.Fatalf("refused DPoP token: %v", err)
	}
	if c, err := v.Authenticate(request("Bearer "+full), Standard); err != nil || c.DID != did || stub.calls != 2 {
		t.Fatalf("session token beside an OAuth verifier: %+v %v (verifier calls %d)", c, err, stub.calls)
	}
}
