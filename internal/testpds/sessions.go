package testpds

// Sessions: logging in, app-password sessions, reading the claims of the tokens the server issued.

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Login calls createSession with an identifier (handle, email or DID) and a password.
func Login(t testing.TB, p *PDS, identifier, password string) *Response {
	t.Helper()
	return p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": identifier, "password": password}, "")
}

// AppPasswordSession creates an app password (privileged or not) and logs in with it.
func AppPasswordSession(t testing.TB, p *PDS, a *Account, name string, privileged bool) string {
	t.Helper()
	r := p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": name, "privileged": privileged}, a.AccessJwt)
	WantStatus(t, r, 200, "")
	pw, _ := r.JSON()["password"].(string)
	r = p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": a.Handle, "password": pw}, "")
	WantStatus(t, r, 200, "")
	tok, _ := r.JSON()["accessJwt"].(string)
	if tok == "" {
		t.Fatalf("no access token: %s", r)
	}
	return tok
}

// JWTScope reads the scope claim of a session JWT (no verification: the server made it).
func JWTScope(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Scope
}

// TokenClaims decodes a JWT's payload without verifying it.
func TokenClaims(t testing.TB, tok string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return claims
}

// ClaimInt reads a numeric claim (exp, iat), failing the test if it is missing.
func ClaimInt(t testing.TB, c jwt.MapClaims, k string) int64 {
	t.Helper()
	f, ok := c[k].(float64)
	if !ok {
		t.Fatalf("claim %s missing: %v", k, c)
	}
	return int64(f)
}
