package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/xrpc"
)

func tokenTestServer() *Verifier {
	return New(Config{JWTSecret: []byte("test-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}, nil, nil)
}

func TestAccessClaimsCachesOnlyWhatVerified(t *testing.T) {
	s := tokenTestServer()
	did := syntax.DID("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
	tok, err := s.accessToken(did, ScopeAppPass, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second answer comes from the cache
		gotDID, scope, err := s.accessClaims(tok)
		if err != nil || gotDID != did.String() || scope != ScopeAppPass {
			t.Fatalf("call %d: %q %q %v", i, gotDID, scope, err)
		}
	}
	if _, ok := s.tokens.get(tok, time.Now()); !ok {
		t.Fatal("a verified token was not remembered")
	}

	// The same token with its signature altered, or its claims, is not the token that was verified.
	dot := strings.LastIndexByte(tok, '.')
	sig := []byte(tok[dot+1:])
	sig[3] ^= 1
	forged := tok[:dot+1] + string(sig)
	if _, _, err := s.accessClaims(forged); !isXRPCError(err, "InvalidToken") {
		t.Fatalf("altered signature: %v, want InvalidToken", err)
	}
	other, _ := s.accessToken("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", ScopeAccess, time.Now())
	mixed := other[:strings.LastIndexByte(other, '.')] + tok[dot:]
	if _, _, err := s.accessClaims(mixed); !isXRPCError(err, "InvalidToken") {
		t.Fatalf("another token's claims with this signature: %v, want InvalidToken", err)
	}

	// A refresh token is never an access token, cached or not.
	refresh, _ := s.refreshToken(did, "jti-1", time.Now().Add(time.Hour), time.Now())
	for range 2 {
		if _, _, err := s.accessClaims(refresh); !isXRPCError(err, "InvalidToken") {
			t.Fatalf("refresh token as access: %v, want InvalidToken", err)
		}
	}
	if len(s.tokens.m) != 1 {
		t.Fatalf("cache holds %d tokens, want only the one verified", len(s.tokens.m))
	}
}

// A remembered token still expires when its exp says.
func TestAccessClaimsExpiresFromCache(t *testing.T) {
	s := tokenTestServer()
	// exp is in whole seconds: issue the token so that it expires at the next second boundary or the one after.
	issued := time.Now().Add(-AccessTTL + time.Second)
	tok, err := s.accessToken("did:plc:ewvi7nxzyoun6zhxrhs64oiz", ScopeAccess, issued)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.accessClaims(tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	exp := issued.Add(AccessTTL).Truncate(time.Second)
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	if _, _, err := s.accessClaims(tok); !isXRPCError(err, "ExpiredToken") {
		t.Fatalf("after expiry: %v, want ExpiredToken", err)
	}
}

func TestVerifiedTokensBounded(t *testing.T) {
	var v verifiedTokens
	now := time.Now()
	// Half of them already expired: a full cache drops those first.
	for i := range maxVerifiedTokens {
		exp := now.Add(time.Hour)
		if i%2 == 0 {
			exp = now.Add(-time.Second)
		}
		v.put(fmt.Sprintf("tok-%d", i), verifiedToken{did: "did:x", exp: exp}, now)
	}
	v.put("fresh", verifiedToken{did: "did:x", exp: now.Add(time.Hour)}, now)
	if n := len(v.m); n != maxVerifiedTokens/2+1 {
		t.Fatalf("after dropping the expired: %d entries, want %d", n, maxVerifiedTokens/2+1)
	}
	for i := range 3 * maxVerifiedTokens {
		v.put(fmt.Sprintf("more-%d", i), verifiedToken{did: "did:x", exp: now.Add(time.Hour)}, now)
		if len(v.m) > maxVerifiedTokens {
			t.Fatalf("%d entries, above the bound %d", len(v.m), maxVerifiedTokens)
		}
	}
	if _, ok := v.get(fmt.Sprintf("more-%d", 3*maxVerifiedTokens-1), now); !ok {
		t.Fatal("the token just added is missing")
	}
}

func isXRPCError(err error, name string) bool {
	xe, ok := err.(*xrpc.Error)
	return ok && xe.Name == name
}
