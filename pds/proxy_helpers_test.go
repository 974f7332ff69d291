package pds_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testservice"
)

var writeJSON = testservice.WriteJSON

// call sends an XRPC request with extra headers.
func call(t *testing.T, p *testpds.PDS, method, nsid, query string, body []byte, token string, headers map[string]string) *testpds.Response {
	t.Helper()
	u := p.URL + "/xrpc/" + nsid
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return p.Do(req, token)
}

// appPasswordSession creates an app password (privileged or not) and logs in with it.
func appPasswordSession(t *testing.T, p *testpds.PDS, a *testpds.Account, name string, privileged bool) string {
	t.Helper()
	r := p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": name, "privileged": privileged}, a.AccessJwt)
	wantStatus(t, r, 200, "")
	pw, _ := r.JSON()["password"].(string)
	r = p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": a.Handle, "password": pw}, "")
	wantStatus(t, r, 200, "")
	tok, _ := r.JSON()["accessJwt"].(string)
	if tok == "" {
		t.Fatalf("no access token: %s", r)
	}
	return tok
}

// tokenClaims decodes a JWT's payload without verifying it.
func tokenClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return claims
}

func claimInt(t *testing.T, c jwt.MapClaims, k string) int64 {
	t.Helper()
	f, ok := c[k].(float64)
	if !ok {
		t.Fatalf("claim %s missing: %v", k, c)
	}
	return int64(f)
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}
