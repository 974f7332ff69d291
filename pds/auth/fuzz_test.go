package auth

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	indigoauth "github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/xrpc"
)

// FuzzSessionJWT: arbitrary strings as access and refresh tokens (seeded with real ones of every scope, an
// expired one, one for another audience, and near misses): parsing never panics, a refusal is an XRPC error,
// and nothing but a token this server signed is accepted (any accepted token names the account it was
// issued to, with a scope the server issues).
func FuzzSessionJWT(f *testing.F) {
	v := New(Config{JWTSecret: []byte("fuzz-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}, nil, fakeTakedowns{})
	other := New(Config{JWTSecret: []byte("fuzz-secret-0123456789abcdef"), ServiceDID: "did:web:elsewhere"}, nil, fakeTakedowns{})
	did := syntax.DID("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
	now := time.Now()
	for _, scope := range []string{ScopeAccess, ScopeAppPass, ScopeAppPassPrivileged, ScopeTakendown} {
		tok, _ := v.accessToken(did, scope, now)
		f.Add(tok)
		f.Add(tok[:len(tok)-2])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	old, _ := v.accessToken(did, ScopeAccess, now.Add(-24*time.Hour))
	elsewhere, _ := other.accessToken(did, ScopeAccess, now)
	refresh, _ := v.refreshToken(did, "jti-1", now.Add(time.Hour), now)
	f.Add(old)
	f.Add(elsewhere)
	f.Add(refresh)
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJkaWQ6cGxjOngifQ.")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		for _, typ := range []string{typAccess, typRefresh} {
			claims, err := v.parseToken(raw, typ)
			if err != nil {
				if _, ok := err.(*xrpc.Error); !ok {
					t.Fatalf("refusal is not an XRPC error: %T %v", err, err)
				}
				continue
			}
			if claims.Subject != did.String() {
				t.Fatalf("accepted a %s token for %q", typ, claims.Subject)
			}
			if typ == typAccess && claims.Scope != ScopeAccess && claims.Scope != ScopeAppPass &&
				claims.Scope != ScopeAppPassPrivileged && claims.Scope != ScopeTakendown {
				t.Fatalf("accepted scope %q", claims.Scope)
			}
		}
		if got, _, err := v.accessClaims(raw); err == nil && got != did.String() {
			t.Fatalf("accessClaims accepted %q", got)
		}
	})
}

// FuzzServiceAuthJWT: arbitrary strings as incoming service-auth tokens, against a directory that knows one
// issuer: no panic, and an accepted token is that issuer's, for this server.
func FuzzServiceAuthJWT(f *testing.F) {
	// A fixed key: the fuzzer's worker processes run this setup again and must agree with the seeds.
	key, err := atcrypto.ParsePrivateBytesK256(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := key.PublicKey()
	iss := syntax.DID("did:plc:fuzzissuerfuzzissuerfuzz")
	dir := identity.NewMockDirectory()
	dir.Insert(identity.Identity{DID: iss, Keys: map[string]identity.VerificationMethod{
		"atproto": {Type: "Multikey", PublicKeyMultibase: pub.Multibase()},
	}})
	v := New(Config{JWTSecret: []byte("x"), ServiceDID: "did:web:localhost", Docs: dir, DocTimeout: time.Second}, nil, fakeTakedowns{})
	lxm := syntax.NSID("com.atproto.repo.uploadBlob")
	for _, aud := range []string{"did:web:localhost", "did:web:elsewhere"} {
		tok, err := indigoauth.SignServiceAuth(iss, aud, time.Hour, &lxm, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(tok[:len(tok)-3])
	}
	anyMethod, _ := indigoauth.SignServiceAuth(iss, "did:web:localhost", time.Hour, nil, key)
	f.Add(anyMethod)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.ServiceAuth(context.Background(), raw, lxm.String())
		if err == nil && got != iss {
			t.Fatalf("accepted a token from %q", got)
		}
	})
}
