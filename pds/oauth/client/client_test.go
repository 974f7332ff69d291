package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth/oauth"
)

const (
	appID  = "https://app.example.com/client-metadata.json"
	appCB  = "https://app.example.com/oauth/callback"
	issuer = "https://pds.example.org"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// publicMeta is what indigo's client library publishes for a public web client.
func publicMeta(t *testing.T) map[string]any {
	t.Helper()
	cfg := oauth.NewPublicConfig(appID, appCB, []string{"atproto", "transition:generic"})
	return toMap(t, cfg.ClientMetadata())
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newResolver(w *web) (*Resolver, *clock) {
	c := &clock{t: time.Now()}
	r := NewResolver(w.client())
	r.Now = c.now
	return r, c
}

func TestLoopbackDefaults(t *testing.T) {
	r := NewResolver(nil)
	for _, id := range []string{"http://localhost", "http://localhost/"} {
		c, err := r.Resolve(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		md := c.Metadata
		if !c.Loopback || c.AuthMethod != AuthNone || c.Confidential() || c.ID != id || md.ClientID != id {
			t.Fatalf("%s: %+v", id, c)
		}
		if md.Scope != "atproto" || c.ApplicationType() != "native" || !md.DPoPBoundAccessTokens ||
			strings.Join(md.RedirectURIs, " ") != "http://127.0.0.1/ http://[::1]/" ||
			!c.AllowsGrant("authorization_code") || !c.AllowsGrant("refresh_token") || *md.ClientName != "Loopback client" {
			t.Fatalf("%s: metadata %+v", id, md)
		}
		// Any port, same path.
		for _, ok := range []string{"http://127.0.0.1/", "http://127.0.0.1:49152/", "http://[::1]:8080/", "http://127.0.0.1:8080"} {
			if !c.RedirectAllowed(ok) {
				t.Errorf("%s: %s refused", id, ok)
			}
		}
		for _, bad := range []string{"http://127.0.0.1:8080/cb", "http://localhost:8080/", "https://127.0.0.1/", "http://127.0.0.2/", "http://127.0.0.1/?x=1", "http://evil.example.com/"} {
			if c.RedirectAllowed(bad) {
				t.Errorf("%s: %s allowed", id, bad)
			}
		}
		if !c.ScopeAllowed("atproto") || c.ScopeAllowed("atproto transition:generic") {
			t.Errorf("%s: scope checks wrong", id)
		}
	}
}

// Loopback ids as the official libraries build them: indigo's NewLocalhostConfig and @atproto/oauth-client's
// buildAtprotoLoopbackClientId (URLSearchParams: spaces as '+').
func TestLoopbackFromLibraries(t *testing.T) {
	r := NewResolver(nil)
	cfg := oauth.NewLocalhostConfig("http://127.0.0.1:8080/callback", []string{"atproto", "transition:generic"})
	ts := "http://localhost?scope=atproto+transition%3Ageneric+transition%3Achat.bsky&redirect_uri=http%3A%2F%2F127.0.0.1%3A5173%2F&redirect_uri=http%3A%2F%2F%5B%3A%3A1%5D%3A5173%2Fcb"
	for _, tc := range []struct {
		id, scope string
		allowed   []string
		refused   []string
	}{
		{cfg.ClientID, "atproto transition:generic", []string{"http://127.0.0.1:8080/callback", "http://127.0.0.1:1/callback"}, []string{"http://127.0.0.1:8080/", "http://[::1]:8080/callback"}},
		{ts, "atproto transition:generic transition:chat.bsky", []string{"http://127.0.0.1:5173/", "http://[::1]:1234/cb"}, []string{"http://127.0.0.1:5173/cb", "http://[::1]:5173/"}},
	} {
		c, err := r.Resolve(context.Background(), tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		if c.Metadata.Scope != tc.scope {
			t.Fatalf("scope %q, want %q", c.Metadata.Scope, tc.scope)
		}
		for _, u := range tc.allowed {
			if !c.RedirectAllowed(u) {
				t.Errorf("%s refused", u)
			}
		}
		for _, u := range tc.refused {
			if c.RedirectAllowed(u) {
				t.Errorf("%s allowed", u)
			}
		}
		if !c.ScopeAllowed("atproto transition:generic") || c.ScopeAllowed("atproto repo:*") || c.ScopeAllowed("atproto  transition:generic") {
			t.Errorf("%s: scope checks wrong", tc.id)
		}
	}
}

func TestLoopbackInvalid(t *testing.T) {
	r := NewResolver(nil)
	if _, err := r.Resolve(context.Background(), "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb"); err != nil {
		t.Fatalf("control: %v", err)
	}
	for _, id := range []string{
		"http://localhost:8080",
		"http://localhost/path",
		"http://localhost#frag",
		"http://localhost?foo=bar",
		"http://localhost?scope=atproto&scope=atproto",
		"http://localhost?scope=transition%3Ageneric",
		"http://localhost?scope=atproto%20%20x",
		"http://localhost?redirect_uri=http%3A%2F%2Flocalhost%3A1%2Fcb",
		"http://localhost?redirect_uri=https%3A%2F%2F127.0.0.1%2Fcb",
		"http://localhost?redirect_uri=http%3A%2F%2F10.0.0.1%2Fcb",
		"http://localhost?redirect_uri=com.example.app%3A%2Fcb",
	} {
		if _, err := r.Resolve(context.Background(), id); !errors.Is(err, ErrInvalidClientID) {
			t.Errorf("%s: got %v, want ErrInvalidClientID", id, err)
		}
	}
}

func TestDiscoverableAndCache(t *testing.T) {
	w := startWeb(t)
	r, clk := newResolver(w)
	md := publicMeta(t)
	md["client_name"] = "Example App"
	md["client_uri"] = "https://app.example.com"
	md["logo_uri"] = "https://cdn.example.net/logo.png"
	w.setJSON(appID, mustJSON(t, md))

	c, err := r.Resolve(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Loopback || c.AuthMethod != AuthNone || c.ID != appID || *c.Metadata.ClientName != "Example App" ||
		c.ApplicationType() != "web" || c.DefaultRedirectURI() != appCB {
		t.Fatalf("client %+v", c)
	}
	if !c.RedirectAllowed(appCB) || c.RedirectAllowed(appCB+"/x") || c.RedirectAllowed("https://app.example.com:8443/oauth/callback") {
		t.Fatal("redirect checks wrong")
	}
	if !c.ScopeAllowed("atproto transition:generic") || !c.ScopeAllowed("atproto") || c.ScopeAllowed("atproto transition:chat.bsky") {
		t.Fatal("scope checks wrong")
	}

	// Cached for the default TTL.
	if _, err := r.Resolve(context.Background(), appID); err != nil || w.count(appID) != 1 {
		t.Fatalf("second resolve: err %v, fetches %d", err, w.count(appID))
	}
	clk.t = clk.t.Add(DefaultTTL + time.Second)
	if _, err := r.Resolve(context.Background(), appID); err != nil || w.count(appID) != 2 {
		t.Fatalf("after TTL: err %v, fetches %d", err, w.count(appID))
	}

	// Cache-Control max-age, clamped to the bounds; no-store disables caching.
	for _, tc := range []struct {
		cc      string
		refetch time.Duration // first moment a new fetch happens
	}{
		{"public, max-age=120", 120 * time.Second},
		{"max-age=1", DefaultMinTTL},
		{"max-age=86400", DefaultMaxTTL},
		{"no-store", 0},
	} {
		r, clk := newResolver(w)
		w.set(appID, doc{ctype: "application/json", body: mustJSON(t, md), header: map[string]string{"Cache-Control": tc.cc}})
		before := w.count(appID)
		r.Resolve(context.Background(), appID)
		if tc.refetch > 0 {
			clk.t = clk.t.Add(tc.refetch - time.Second)
			r.Resolve(context.Background(), appID)
			if w.count(appID) != before+1 {
				t.Errorf("%s: refetched before %v", tc.cc, tc.refetch)
			}
			clk.t = clk.t.Add(time.Second)
		}
		r.Resolve(context.Background(), appID)
		if w.count(appID) != before+2 {
			t.Errorf("%s: not refetched at %v (fetches %d)", tc.cc, tc.refetch, w.count(appID)-before)
		}
	}

	// A document that turns invalid is refused once the cache expires, and invalid documents are not cached.
	r, clk = newResolver(w)
	w.setJSON(appID, mustJSON(t, md))
	if _, err := r.Resolve(context.Background(), appID); err != nil {
		t.Fatal(err)
	}
	bad := publicMeta(t)
	bad["dpop_bound_access_tokens"] = false
	w.setJSON(appID, mustJSON(t, bad))
	clk.t = clk.t.Add(DefaultTTL + time.Second)
	before := w.count(appID)
	for range 2 {
		if _, err := r.Resolve(context.Background(), appID); !errors.Is(err, ErrInvalidClientMetadata) {
			t.Fatalf("invalid document: %v", err)
		}
	}
	if w.count(appID) != before+2 {
		t.Fatal("invalid document was cached")
	}
}

func TestInvalidClientIDs(t *testing.T) {
	w := startWeb(t)
	r, _ := newResolver(w)
	w.setJSON(appID, mustJSON(t, publicMeta(t)))
	if _, err := r.Resolve(context.Background(), appID); err != nil {
		t.Fatalf("control: %v", err)
	}
	for _, id := range []string{
		"",
		"app.example.com/client-metadata.json",
		"http://app.example.com/client-metadata.json",
		"https://app.example.com:8443/client-metadata.json",
		"https://203.0.113.7/client-metadata.json",
		"https://[2001:db8::1]/client-metadata.json",
		"https://app.example.com",
		"https://app.example.com/",
		"https://app.example.com/meta/",
		"https://app.example.com/client-metadata.json#x",
		"https://user:pw@app.example.com/client-metadata.json",
		"https://app.localhost/client-metadata.json",
		"https://pds.internal/client-metadata.json",
		"https://com/client-metadata.json",
		"https://APP.example.com/client-metadata.json",
		"https://app.example.com/a/../client-metadata.json",
		"ftp://app.example.com/client-metadata.json",
	} {
		if _, err := r.Resolve(context.Background(), id); !errors.Is(err, ErrInvalidClientID) {
			t.Errorf("%q: got %v, want ErrInvalidClientID", id, err)
		}
	}
}

func TestInvalidMetadata(t *testing.T) {
	nativeID := "https://app.example.com/native.json"
	cases := []struct {
		name   string
		id     string // default appID
		mutate func(m map[string]any)
		reason string
	}{
		{"client_id mismatch", "", func(m map[string]any) { m["client_id"] = "https://app.example.com/other.json" }, "client_id"},
		{"client_id missing", "", func(m map[string]any) { delete(m, "client_id") }, "client_id"},
		{"no redirect_uris", "", func(m map[string]any) { m["redirect_uris"] = []string{} }, "redirect_uri"},
		{"http redirect", "", func(m map[string]any) { m["redirect_uris"] = []string{"http://app.example.com/cb"} }, "http"},
		{"redirect on another host", "", func(m map[string]any) { m["redirect_uris"] = []string{"https://evil.example.net/cb"} }, "host"},
		{"redirect to localhost", "", func(m map[string]any) { m["redirect_uris"] = []string{"http://localhost:3000/cb"} }, "localhost"},
		{"loopback redirect for a web app", "", func(m map[string]any) { m["redirect_uris"] = []string{"http://127.0.0.1:3000/cb"} }, "native"},
		{"custom scheme for a web app", "", func(m map[string]any) { m["redirect_uris"] = []string{"com.example.app:/cb"} }, "native"},
		{"redirect without dot scheme", "", func(m map[string]any) { m["redirect_uris"] = []string{"myapp:/cb"} }, "scheme"},
		{"native scheme not the reversed host", nativeID, func(m map[string]any) { m["redirect_uris"] = []string{"com.example.other:/cb"} }, "reversed"},
		{"native scheme with authority", nativeID, func(m map[string]any) { m["redirect_uris"] = []string{"com.example.app://cb"} }, "path"},
		{"native http non-loopback", nativeID, func(m map[string]any) { m["redirect_uris"] = []string{"http://app.example.com/cb"} }, "http"},
		{"application_type desktop", "", func(m map[string]any) { m["application_type"] = "desktop" }, "application_type"},
		{"no authorization_code grant", "", func(m map[string]any) { m["grant_types"] = []string{"refresh_token"} }, "authorization_code"},
		{"implicit grant", "", func(m map[string]any) { m["grant_types"] = []string{"authorization_code", "implicit"} }, "implicit"},
		{"duplicate grant", "", func(m map[string]any) { m["grant_types"] = []string{"authorization_code", "authorization_code"} }, "duplicate"},
		{"token response type", "", func(m map[string]any) { m["response_types"] = []string{"code", "token"} }, "response type"},
		{"no response types", "", func(m map[string]any) { delete(m, "response_types") }, "code"},
		{"dpop false", "", func(m map[string]any) { m["dpop_bound_access_tokens"] = false }, "dpop"},
		{"dpop missing", "", func(m map[string]any) { delete(m, "dpop_bound_access_tokens") }, "dpop"},
		{"dpop as string", "", func(m map[string]any) { m["dpop_bound_access_tokens"] = "true" }, ""},
		{"scope without atproto", "", func(m map[string]any) { m["scope"] = "transition:generic" }, "atproto"},
		{"duplicate scope", "", func(m map[string]any) { m["scope"] = "atproto atproto" }, "duplicate"},
		{"malformed scope", "", func(m map[string]any) { m["scope"] = "atproto  transition:generic" }, "scope"},
		{"no auth method", "", func(m map[string]any) { delete(m, "token_endpoint_auth_method") }, "token_endpoint_auth_method"},
		{"client_secret_basic", "", func(m map[string]any) { m["token_endpoint_auth_method"] = "client_secret_basic" }, "not supported"},
		{"none with signing alg", "", func(m map[string]any) { m["token_endpoint_auth_signing_alg"] = "ES256" }, "signing_alg"},
		{"private_key_jwt without keys", "", func(m map[string]any) {
			m["token_endpoint_auth_method"] = "private_key_jwt"
			m["token_endpoint_auth_signing_alg"] = "ES256"
		}, "jwks"},
		{"client_uri other origin", "", func(m map[string]any) { m["client_uri"] = "https://other.example.com" }, "client_uri"},
		{"client_uri not a parent", "", func(m map[string]any) { m["client_uri"] = "https://app.example.com/elsewhere" }, "parent"},
		{"logo over http", "", func(m map[string]any) { m["logo_uri"] = "http://app.example.com/logo.png" }, "logo_uri"},
		{"subject_type pairwise", "", func(m map[string]any) { m["subject_type"] = "pairwise" }, "subject_type"},
		{"OIDC id_token alg", "", func(m map[string]any) { m["id_token_signed_response_alg"] = "RS256" }, "id_token"},
		{"not JSON object", "", func(m map[string]any) { m["scope"] = 12 }, ""},
	}
	w := startWeb(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = appID
			}
			m := publicMeta(t)
			m["client_id"] = id
			if id == nativeID {
				m["application_type"] = "native"
				m["redirect_uris"] = []string{"com.example.app:/callback", "http://127.0.0.1/callback", "https://app.example.com/universal"}
			}
			w.setJSON(id, mustJSON(t, m))
			r, _ := newResolver(w)
			if _, err := r.Resolve(context.Background(), id); err != nil {
				t.Fatalf("control refused: %v", err)
			}
			tc.mutate(m)
			w.setJSON(id, mustJSON(t, m))
			r, _ = newResolver(w)
			_, err := r.Resolve(context.Background(), id)
			if !errors.Is(err, ErrInvalidClientMetadata) {
				t.Fatalf("got %v, want ErrInvalidClientMetadata", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not mention %q", err, tc.reason)
			}
		})
	}
}

func TestFetchFailures(t *testing.T) {
	w := startWeb(t)
	body := mustJSON(t, publicMeta(t))
	cases := []struct {
		name   string
		d      doc
		reason string
	}{
		{"not found", doc{status: 404, ctype: "application/json", body: body}, "404"},
		{"redirect", doc{status: 302, header: map[string]string{"Location": "/elsewhere.json"}}, "redirect"},
		{"201", doc{status: 201, ctype: "application/json", body: body}, "201"},
		{"html", doc{ctype: "text/html", body: body}, "content type"},
		{"too large", doc{ctype: "application/json", body: body[:len(body)-1] + `,"pad":"` + strings.Repeat("x", DefaultMaxSize) + `"}`}, "larger"},
		{"slow", doc{ctype: "application/json", body: body, delay: 5 * time.Second}, "deadline"},
		{"not JSON", doc{ctype: "application/json", body: "{"}, "unexpected end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.set(appID, doc{ctype: "application/json", body: body})
			r, _ := newResolver(w)
			r.Timeout = 300 * time.Millisecond
			if _, err := r.Resolve(context.Background(), appID); err != nil {
				t.Fatalf("control: %v", err)
			}
			w.set(appID, tc.d)
			r, _ = newResolver(w)
			r.Timeout = 300 * time.Millisecond
			_, err := r.Resolve(context.Background(), appID)
			if !errors.Is(err, ErrInvalidClientMetadata) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want ErrInvalidClientMetadata mentioning %q", err, tc.reason)
			}
		})
	}
}

func TestNativeClient(t *testing.T) {
	w := startWeb(t)
	const id = "https://app.example.com/native.json"
	m := publicMeta(t)
	m["client_id"] = id
	m["application_type"] = "native"
	m["redirect_uris"] = []string{"com.example.app:/callback", "http://127.0.0.1/callback", "https://app.example.com/universal"}
	w.setJSON(id, mustJSON(t, m))
	r, _ := newResolver(w)
	c, err := r.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"com.example.app:/callback", "http://127.0.0.1:61234/callback", "https://app.example.com/universal"} {
		if !c.RedirectAllowed(ok) {
			t.Errorf("%s refused", ok)
		}
	}
	for _, bad := range []string{"com.example.app:/other", "com.example.app://callback", "https://app.example.com:444/universal"} {
		if c.RedirectAllowed(bad) {
			t.Errorf("%s allowed", bad)
		}
	}
	if c.DefaultRedirectURI() != "" {
		t.Error("default redirect with several registered")
	}
}

// confidential builds an indigo confidential client config and its key.
func confidential(t *testing.T, kid string) (oauth.ClientConfig, *atcrypto.PrivateKeyP256) {
	t.Helper()
	priv, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	cfg := oauth.NewPublicConfig(appID, appCB, []string{"atproto", "transition:generic"})
	if err := cfg.SetClientSecret(priv, kid); err != nil {
		t.Fatal(err)
	}
	return cfg, priv
}

func assertionForm(t *testing.T, cfg oauth.ClientConfig, aud string) url.Values {
	t.Helper()
	a, err := cfg.NewClientAssertion(aud)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"client_id": {cfg.ClientID}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
}

func TestConfidentialClient(t *testing.T) {
	w := startWeb(t)
	cfg, _ := confidential(t, "key-1")
	md := toMap(t, cfg.ClientMetadata())
	jwks := cfg.PublicJWKS()

	for _, variant := range []string{"jwks", "jwks_uri"} {
		t.Run(variant, func(t *testing.T) {
			if variant == "jwks" {
				md["jwks"] = jwks
				delete(md, "jwks_uri")
			} else {
				delete(md, "jwks")
				md["jwks_uri"] = "https://app.example.com/jwks.json"
				w.set("https://app.example.com/jwks.json", doc{ctype: "application/jwk-set+json", body: mustJSON(t, jwks)})
			}
			w.setJSON(appID, mustJSON(t, md))
			r, clk := newResolver(w)
			c, err := r.Resolve(context.Background(), appID)
			if err != nil {
				t.Fatal(err)
			}
			c.Now = clk.now
			if !c.Confidential() || len(c.Keys) != 1 || c.Keys[0].KID != "key-1" {
				t.Fatalf("client %+v", c)
			}
			seen := map[string]bool{}
			jtiSeen := func(jti string, exp time.Time) bool {
				if !exp.After(clk.t) {
					t.Errorf("jti remembered until %v, already past", exp)
				}
				if seen[jti] {
					return true
				}
				seen[jti] = true
				return false
			}

			form := assertionForm(t, cfg, issuer)
			auth, err := c.AuthenticateAssertion(form, issuer, jtiSeen)
			if err != nil {
				t.Fatalf("indigo assertion refused: %v", err)
			}
			if auth.Method != AuthPrivateKeyJWT || auth.KID != "key-1" || auth.JKT == "" || auth.JTI == "" {
				t.Fatalf("auth %+v", auth)
			}
			// The same assertion again.
			if err := c.Authenticate(form, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) || !strings.Contains(err.Error(), "replayed") {
				t.Fatalf("replay: %v", err)
			}
			// Made for another server.
			if err := c.Authenticate(assertionForm(t, cfg, "https://other.example.org"), issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("wrong aud: %v", err)
			}
			// Signed by a key the client does not publish, under its kid.
			other, _ := confidential(t, "key-1")
			if err := c.Authenticate(assertionForm(t, other, issuer), issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("other key: %v", err)
			}
			// Under a kid the client does not have.
			unknown, _ := confidential(t, "key-2")
			if err := c.Authenticate(assertionForm(t, unknown, issuer), issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) || !strings.Contains(err.Error(), "kid") {
				t.Fatalf("unknown kid: %v", err)
			}
			// Stale: made now, presented two minutes later.
			stale := assertionForm(t, cfg, issuer)
			clk.t = clk.t.Add(2 * time.Minute)
			if err := c.Authenticate(stale, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("stale: %v", err)
			}
			clk.t = clk.t.Add(-2 * time.Minute)
			// Missing pieces.
			f := assertionForm(t, cfg, issuer)
			f.Del("client_assertion_type")
			if err := c.Authenticate(f, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("no assertion type: %v", err)
			}
			f = assertionForm(t, cfg, issuer)
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			if err := c.Authenticate(f, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("saml assertion type: %v", err)
			}
			if err := c.Authenticate(url.Values{"client_id": {appID}}, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("no assertion: %v", err)
			}
			f = assertionForm(t, cfg, issuer)
			f.Set("client_secret", "hunter2")
			if err := c.Authenticate(f, issuer, jtiSeen); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("client_secret: %v", err)
			}
			// Still fine after all that.
			if err := c.Authenticate(assertionForm(t, cfg, issuer), issuer, jtiSeen); err != nil {
				t.Fatalf("final control: %v", err)
			}
		})
	}
}

// Hand-made assertions for the claims indigo always gets right.
func TestAssertionClaims(t *testing.T) {
	priv, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	c := &Client{ID: appID, AuthMethod: AuthPrivateKeyJWT, Keys: []Key{{KID: "k", Key: pub}}, Metadata: &oauth.ClientMetadata{ClientID: appID}}
	now := time.Now()
	base := func() (map[string]any, map[string]any) {
		return map[string]any{"alg": "ES256", "kid": "k"},
			map[string]any{"iss": appID, "sub": appID, "aud": issuer, "jti": randText(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	h, cl := base()
	if err := c.Authenticate(form(sign(t, priv, h, cl)), issuer, nil); err != nil {
		t.Fatalf("control: %v", err)
	}
	h, cl = base()
	cl["aud"] = []string{"https://x.example", issuer}
	if err := c.Authenticate(form(sign(t, priv, h, cl)), issuer, nil); err != nil {
		t.Fatalf("aud array with the issuer: %v", err)
	}
	for name, mutate := range map[string]func(h, cl map[string]any){
		"iss":                     func(h, cl map[string]any) { cl["iss"] = "https://evil.example.com/client-metadata.json" },
		"sub":                     func(h, cl map[string]any) { cl["sub"] = "did:plc:abc" },
		"no iat":                  func(h, cl map[string]any) { delete(cl, "iat") },
		"future iat":              func(h, cl map[string]any) { cl["iat"] = now.Add(time.Minute).Unix() },
		"expired":                 func(h, cl map[string]any) { cl["exp"] = now.Add(-time.Minute).Unix() },
		"no jti":                  func(h, cl map[string]any) { delete(cl, "jti") },
		"no kid":                  func(h, cl map[string]any) { delete(h, "kid") },
		"alg ES256K":              func(h, cl map[string]any) { h["alg"] = "ES256K" },
		"alg none":                func(h, cl map[string]any) { h["alg"] = "none" },
		"alg HS256":               func(h, cl map[string]any) { h["alg"] = "HS256" },
		"aud token endpoint only": func(h, cl map[string]any) { cl["aud"] = issuer + "/oauth/token" },
	} {
		h, cl := base()
		mutate(h, cl)
		if err := c.Authenticate(form(sign(t, priv, h, cl)), issuer, nil); !errors.Is(err, ErrInvalidClient) {
			t.Errorf("%s: got %v, want ErrInvalidClient", name, err)
		}
	}
	// A public client must not present an assertion.
	pc := &Client{ID: appID, AuthMethod: AuthNone, Metadata: &oauth.ClientMetadata{ClientID: appID}}
	if err := pc.Authenticate(url.Values{"client_id": {appID}}, issuer, nil); err != nil {
		t.Fatalf("public control: %v", err)
	}
	h, cl = base()
	if err := pc.Authenticate(form(sign(t, priv, h, cl)), issuer, nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("public client with assertion: %v", err)
	}
	if err := pc.Authenticate(url.Values{"client_id": {"https://other.example.com/c.json"}}, issuer, nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("client_id mismatch: %v", err)
	}
	// indigo's Go client sends both assertion fields empty for a public client: absent, not an assertion.
	empty := url.Values{"client_id": {appID}, "client_assertion_type": {""}, "client_assertion": {""}}
	if err := pc.Authenticate(empty, issuer, nil); err != nil {
		t.Fatalf("public client with empty assertion fields: %v", err)
	}
	if empty.Get("client_assertion_type") != "" || !empty.Has("client_assertion") {
		t.Fatal("the caller's form was changed")
	}
	// An empty assertion does not authenticate a confidential client.
	if err := c.Authenticate(empty, issuer, nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("confidential client with empty assertion: %v", err)
	}
}

func form(assertion string) url.Values {
	return url.Values{"client_id": {appID}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {assertion}}
}

func TestJWKSRules(t *testing.T) {
	w := startWeb(t)
	cfg, priv := confidential(t, "key-1")
	md := toMap(t, cfg.ClientMetadata())
	jwk := toMap(t, cfg.PublicJWKS().Keys[0])
	set := func(keys ...map[string]any) {
		md["jwks"] = map[string]any{"keys": keys}
		w.setJSON(appID, mustJSON(t, md))
	}

	set(jwk)
	r, _ := newResolver(w)
	if _, err := r.Resolve(context.Background(), appID); err != nil {
		t.Fatalf("control: %v", err)
	}
	// An RSA key and a key for encryption are skipped, not fatal, next to a usable one.
	set(map[string]any{"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"}, map[string]any{"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": jwk["x"], "y": jwk["y"]}, jwk)
	r, _ = newResolver(w)
	c, err := r.Resolve(context.Background(), appID)
	if err != nil || len(c.Keys) != 1 || c.Keys[0].KID != "key-1" {
		t.Fatalf("mixed set: %v %+v", err, c)
	}
	withPrivate := map[string]any{}
	for k, v := range jwk {
		withPrivate[k] = v
	}
	withPrivate["d"] = "c2VjcmV0"
	noKid := map[string]any{"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]}
	_ = priv
	for name, keys := range map[string][]map[string]any{
		"private member": {withPrivate},
		"no kid":         {noKid},
		"empty":          {},
		"only RSA":       {{"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"}},
	} {
		set(keys...)
		r, _ := newResolver(w)
		if _, err := r.Resolve(context.Background(), appID); !errors.Is(err, ErrInvalidClientMetadata) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// jwks and jwks_uri together.
	set(jwk)
	md["jwks_uri"] = "https://app.example.com/jwks.json"
	w.setJSON(appID, mustJSON(t, md))
	r, _ = newResolver(w)
	if _, err := r.Resolve(context.Background(), appID); !errors.Is(err, ErrInvalidClientMetadata) || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("jwks and jwks_uri: %v", err)
	}
	// jwks_uri over http, or unreachable.
	delete(md, "jwks")
	for _, u := range []string{"http://app.example.com/jwks.json", "https://app.example.com/missing.json"} {
		md["jwks_uri"] = u
		w.setJSON(appID, mustJSON(t, md))
		r, _ = newResolver(w)
		if _, err := r.Resolve(context.Background(), appID); !errors.Is(err, ErrInvalidClientMetadata) {
			t.Errorf("jwks_uri %s: %v", u, err)
		}
	}
	// Signing alg other than ES256.
	md["jwks"] = map[string]any{"keys": []any{jwk}}
	delete(md, "jwks_uri")
	md["token_endpoint_auth_signing_alg"] = "RS256"
	w.setJSON(appID, mustJSON(t, md))
	r, _ = newResolver(w)
	if _, err := r.Resolve(context.Background(), appID); !errors.Is(err, ErrInvalidClientMetadata) {
		t.Errorf("RS256: %v", err)
	}
}
