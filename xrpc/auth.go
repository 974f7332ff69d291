package xrpc

import (
	"net/http"
	"strings"
)

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header. The scheme is matched case-insensitively (RFC 9110).
func BearerToken(r *http.Request) (string, bool) {
	return authParam(r, "Bearer")
}

// DPoPToken returns the token of an "Authorization: DPoP <token>" header
// (OAuth access tokens).
func DPoPToken(r *http.Request) (string, bool) {
	return authParam(r, "DPoP")
}

func authParam(r *http.Request, scheme string) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) <= len(scheme)+1 || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", false
	}
	tok := strings.TrimSpace(h[len(scheme)+1:])
	if tok == "" {
		return "", false
	}
	return tok, true
}

// BasicAuth returns HTTP Basic credentials; like the reference, both parts
// must be non-empty.
func BasicAuth(r *http.Request) (user, pass string, ok bool) {
	user, pass, ok = r.BasicAuth()
	if !ok || user == "" || pass == "" {
		return "", "", false
	}
	return user, pass, true
}

// HasAuthorization reports whether any Authorization header was sent
// (to tell AuthMissing from bad credentials).
func HasAuthorization(r *http.Request) bool {
	return r.Header.Get("Authorization") != ""
}
