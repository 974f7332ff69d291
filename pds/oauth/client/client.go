package client

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/pds/oauth/dpop"
	"github.com/pdsgo/pds/pds/oauth/internal/jws"
)

var (
	// ErrInvalidClientID: the client_id is neither a valid loopback client id nor a valid https client_id URL.
	ErrInvalidClientID = errors.New("invalid client_id")
	// ErrInvalidClientMetadata: the metadata document could not be fetched or breaks the spec (wrapped with why).
	ErrInvalidClientMetadata = errors.New("invalid client metadata")
	// ErrInvalidClient: client authentication failed (wrapped with why).
	ErrInvalidClient = errors.New("invalid client")
)

// Token endpoint authentication methods.
const (
	AuthNone          = "none"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// ClientAssertionType is the only client_assertion_type accepted (RFC 7523).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientAssertionMaxAge is how old a client assertion's iat may be (the reference's CLIENT_ASSERTION_MAX_AGE).
const ClientAssertionMaxAge = time.Minute

// assertionLeeway is the clock skew tolerated on client assertion timestamps.
const assertionLeeway = 10 * time.Second

// Key is one of a confidential client's signing keys.
type Key struct {
	KID string
	Key atcrypto.PublicKey
}

// Client is a resolved, validated client.
type Client struct {
	ID       string
	Metadata *oauth.ClientMetadata
	// Loopback marks a development client (client_id http://localhost...): its metadata is made up by this
	// server, so nothing in it is verified; consent pages must say so.
	Loopback bool
	// AuthMethod is AuthNone or AuthPrivateKeyJWT.
	AuthMethod string
	// Keys are the private_key_jwt client's keys (from jwks or jwks_uri) that can sign ES256 assertions.
	Keys []Key

	// Now is the clock for assertion checks (time.Now when nil).
	Now func() time.Time
}

// Confidential reports whether the client authenticates with a key (longer session lifetimes apply).
func (c *Client) Confidential() bool { return c.AuthMethod == AuthPrivateKeyJWT }

// ApplicationType is "web" or "native".
func (c *Client) ApplicationType() string {
	if c.Metadata.ApplicationType == nil || *c.Metadata.ApplicationType == "" {
		return "web"
	}
	return *c.Metadata.ApplicationType
}

// AllowsGrant reports whether the client declared this grant type (authorization_code, refresh_token).
func (c *Client) AllowsGrant(grant string) bool { return slices.Contains(c.Metadata.GrantTypes, grant) }

// DefaultRedirectURI is the redirect URI to use when a request names none: the only registered one, else "".
func (c *Client) DefaultRedirectURI() string {
	if len(c.Metadata.RedirectURIs) == 1 {
		return c.Metadata.RedirectURIs[0]
	}
	return ""
}

// RedirectAllowed reports whether uri is one of the client's redirect URIs: an exact match, except that for
// loopback IP redirect URIs (http://127.0.0.1, http://[::1]) the port is not compared (RFC 8252 §7.3, §8.4).
func (c *Client) RedirectAllowed(uri string) bool {
	for _, allowed := range c.Metadata.RedirectURIs {
		if compareRedirectURI(allowed, uri) {
			return true
		}
	}
	return false
}

func compareRedirectURI(allowed, requested string) bool {
	if allowed == requested {
		return true
	}
	a, err := url.Parse(allowed)
	if err != nil || !isLoopbackHost(a.Hostname()) {
		return false
	}
	r, err := url.Parse(requested)
	if err != nil {
		return false
	}
	return a.Scheme == r.Scheme && strings.EqualFold(a.Hostname(), r.Hostname()) && pathOrSlash(a) == pathOrSlash(r) &&
		a.RawQuery == r.RawQuery && a.ForceQuery == r.ForceQuery && a.Fragment == r.Fragment && a.User.String() == r.User.String()
}

// pathOrSlash is the URL path as a WHATWG URL parser reports it for http(s): "/" when empty.
func pathOrSlash(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// ScopeAllowed reports whether every token of a requested scope string was declared in the client's metadata
// scope (exact token match, as the reference). A malformed scope string (empty tokens) is not allowed.
func (c *Client) ScopeAllowed(scope string) bool {
	if scope == "" {
		return true
	}
	declared := strings.Split(c.Metadata.Scope, " ")
	for _, s := range strings.Split(scope, " ") {
		if s == "" || !slices.Contains(declared, s) {
			return false
		}
	}
	return true
}

// Auth is the result of a successful client authentication. Sessions of confidential clients are bound to the
// key that authenticated them (the spec requires refreshes to use the same key).
type Auth struct {
	Method string // AuthNone or AuthPrivateKeyJWT
	KID    string // private_key_jwt: the signing key's kid
	JKT    string // private_key_jwt: RFC 7638 thumbprint of the signing key
	JTI    string // private_key_jwt: the assertion's jti
}

// Authenticate checks the client authentication in a PAR, token or revocation request form. See
// AuthenticateAssertion.
func (c *Client) Authenticate(form url.Values, issuer string, jtiSeen func(jti string, exp time.Time) bool) error {
	_, err := c.AuthenticateAssertion(form, issuer, jtiSeen)
	return err
}

// AuthenticateAssertion checks the client authentication in a request form. A public client (none) must not
// send an assertion or secret. A private_key_jwt client must send client_assertion_type jwt-bearer and a
// client_assertion: an ES256 JWT whose kid names one of its keys, signed by it, with iss = sub = client_id, aud
// = issuer, iat no older than ClientAssertionMaxAge, exp (if present) not passed, and a jti that jtiSeen has not
// seen (jtiSeen records it until exp and reports a replay; it may be nil only in tests).
func (c *Client) AuthenticateAssertion(form url.Values, issuer string, jtiSeen func(jti string, exp time.Time) bool) (*Auth, error) {
	fail := func(format string, args ...any) (*Auth, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidClient}, args...)...)
	}
	// An empty parameter is an absent one (RFC 6749 3.1): indigo's Go client sends client_assertion and
	// client_assertion_type empty for public clients.
	for _, k := range []string{"client_assertion", "client_assertion_type"} {
		if form.Has(k) && form.Get(k) == "" && len(form[k]) == 1 {
			form = withoutParam(form, k)
		}
	}
	if form.Has("client_secret") {
		return fail("client_secret is not supported")
	}
	if id := form.Get("client_id"); id != "" && id != c.ID {
		return fail("client_id does not match")
	}
	assertionType, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
	switch c.AuthMethod {
	case AuthNone:
		if form.Has("client_assertion") || form.Has("client_assertion_type") {
			return fail("client authentication method is none: no client_assertion allowed")
		}
		return &Auth{Method: AuthNone}, nil
	case AuthPrivateKeyJWT:
	default:
		return fail("unsupported token_endpoint_auth_method %q", c.AuthMethod)
	}
	if len(form["client_assertion"]) != 1 || assertion == "" {
		return fail("private_key_jwt requires one client_assertion")
	}
	if assertionType != ClientAssertionType || len(form["client_assertion_type"]) != 1 {
		return fail("unsupported client_assertion_type %q", assertionType)
	}
	var cl jwt.RegisteredClaims
	tok, err := jws.Parse(assertion, &cl)
	if err != nil {
		return fail("client_assertion malformed: %v", err)
	}
	if tok.Alg() != "ES256" {
		return fail("client_assertion alg must be ES256")
	}
	if _, ok := tok.Header["crit"]; ok {
		return fail("client_assertion has an unsupported crit header")
	}
	kid := tok.HeaderString("kid")
	if kid == "" {
		return fail("client_assertion header has no kid")
	}
	var key atcrypto.PublicKey
	for _, k := range c.Keys {
		if k.KID == kid {
			key = k.Key
			break
		}
	}
	if key == nil {
		return fail("no client key with kid %q", kid)
	}
	if err := tok.Verify(key); err != nil {
		return fail("client_assertion: %v", err)
	}
	if cl.Issuer != c.ID || cl.Subject != c.ID {
		return fail("client_assertion iss and sub must be the client_id")
	}
	if issuer == "" || !slices.Contains(cl.Audience, issuer) {
		return fail("client_assertion aud must be the issuer")
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	if cl.IssuedAt == nil {
		return fail("client_assertion has no iat")
	}
	iat := cl.IssuedAt.Time
	if now.Sub(iat) > ClientAssertionMaxAge+assertionLeeway {
		return fail("client_assertion too old")
	}
	if iat.Sub(now) > assertionLeeway {
		return fail("client_assertion iat in the future")
	}
	exp := iat.Add(ClientAssertionMaxAge + assertionLeeway)
	if cl.ExpiresAt != nil {
		if !now.Before(cl.ExpiresAt.Time.Add(assertionLeeway)) {
			return fail("client_assertion expired")
		}
		if e := cl.ExpiresAt.Time.Add(assertionLeeway); e.Before(exp) {
			exp = e
		}
	}
	if cl.NotBefore != nil && cl.NotBefore.Time.Sub(now) > assertionLeeway {
		return fail("client_assertion not yet valid")
	}
	if cl.ID == "" {
		return fail("client_assertion has no jti")
	}
	if jtiSeen != nil && jtiSeen(cl.ID, exp) {
		return fail("client_assertion jti replayed")
	}
	jkt, err := dpop.KeyThumbprint(key)
	if err != nil {
		return fail("key thumbprint: %v", err)
	}
	return &Auth{Method: AuthPrivateKeyJWT, KID: kid, JKT: jkt, JTI: cl.ID}, nil
}

// withoutParam returns a copy of v without key (the caller's form is left as it is).
func withoutParam(v url.Values, key string) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		if k != key {
			out[k] = vs
		}
	}
	return out
}
