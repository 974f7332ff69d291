package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
)

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + "/.well-known/oauth-protected-resource")
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if prm.Resource != e.issuer || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != e.issuer {
		t.Fatalf("protected resource metadata: %+v", prm)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS on protected-resource metadata")
	}
	m := e.metadata()
	if m.Issuer != e.issuer || m.PushedAuthorizationRequestEndpoint != e.issuer+"/oauth/par" || m.TokenEndpoint != e.issuer+"/oauth/token" ||
		m.RevocationEndpoint != e.issuer+"/oauth/revoke" || m.AuthorizationEndpoint != e.issuer+"/oauth/authorize" {
		t.Fatalf("endpoints: %+v", m)
	}
	// indigo's client accepts only https issuers: the same document with an https issuer must pass its checks,
	// and this dev one must fail only on the scheme (control: the validator does reject).
	if err := m.Validate(e.issuer); err == nil || !strings.Contains(err.Error(), "issuer URL") {
		t.Fatalf("control: an http issuer should fail indigo's check on the issuer only, got %v", err)
	}
	store, _ := accountstore.Open(context.Background(), t.TempDir()+"/a.sqlite")
	defer store.Close()
	prod, err := oauth.New(oauth.Config{Issuer: "https://pds.example.com", ServiceDID: "did:web:pds.example.com",
		Secret: []byte("0123456789abcdef0123456789abcdef"), ClientHTTP: http.DefaultClient},
		oauth.Deps{Store: store, Accounts: &testAccounts{store}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(prod.Metadata())
	var pm ioauth.AuthServerMetadata
	json.Unmarshal(b, &pm)
	if err := pm.Validate("https://pds.example.com"); err != nil {
		t.Fatalf("indigo rejects our metadata: %v", err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	for _, k := range []string{"scopes_supported", "dpop_signing_alg_values_supported", "token_endpoint_auth_methods_supported",
		"code_challenge_methods_supported", "response_types_supported", "grant_types_supported", "jwks_uri"} {
		if raw[k] == nil {
			t.Errorf("metadata lacks %s", k)
		}
	}
	if cc, _ := raw["code_challenge_methods_supported"].([]any); len(cc) != 1 || cc[0] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v", cc)
	}
	for _, bad := range []string{"http://pds.example.com", "https://pds.example.com/path", "https://pds.example.com:443"} {
		if _, err := oauth.New(oauth.Config{Issuer: bad, ServiceDID: "did:web:x", Secret: make([]byte, 32), ClientHTTP: http.DefaultClient},
			oauth.Deps{Store: store, Accounts: &testAccounts{store}}); err == nil {
			t.Errorf("issuer %q accepted", bad)
		}
	}
	// CORS preflight.
	req, _ := http.NewRequest("OPTIONS", e.issuer+"/oauth/token", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "DPoP") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestFormFlow: the whole flow through the pages over plain HTTP and indigo's client, then the token lifecycle:
// resource access, refresh (rotation, single use), replay, revocation.
func TestFormFlow(t *testing.T) {
	e := newEnv(t)
	a := e.newApp()
	info, authURL := a.Start(t, aliceHandle)
	b := newFormBrowser(t)
	cb := e.approveWithForms(t, b, authURL, aliceHandle, alicePassword)
	if cb.Get("code") == "" || cb.Get("state") != info.State || cb.Get("iss") != e.issuer {
		t.Fatalf("callback: %v", cb)
	}
	sess, tok := a.Finish(t, info, cb.Get("code"))
	if tok.Subject != aliceDID || tok.Scope != "atproto transition:generic" || tok.RefreshToken == "" {
		t.Fatalf("token response: %+v", tok)
	}
	status, body := e.whoami(t, sess)
	if status != 200 || body["did"] != aliceDID || body["scope"] != "atproto transition:generic" {
		t.Fatalf("resource: %d %v", status, body)
	}
	sessions, err := e.p.Sessions(context.Background(), aliceDID)
	if err != nil || len(sessions) != 1 || sessions[0].ID != body["session"] {
		t.Fatalf("sessions: %+v %v", sessions, err)
	}

	// The code is single-use: a replay fails and revokes what the code issued.
	if _, err := a.CA.SendInitialTokenRequest(context.Background(), cb.Get("code"), *info); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("replayed code: %v", err)
	}
	if status, body := e.whoami(t, sess); status == 200 {
		t.Fatalf("access after code replay: %d %v", status, body)
	}

	// A new session: refresh rotates; the old refresh token is then a replay that ends the session.
	info, authURL = a.Start(t, aliceHandle)
	cb = e.approveWithForms(t, b, authURL, aliceHandle, alicePassword) // already signed in: straight to consent
	sess, tok = a.Finish(t, info, cb.Get("code"))
	oldRefresh, oldAccess := tok.RefreshToken, tok.AccessToken
	if _, err := sess.RefreshTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sess.Data.RefreshToken == oldRefresh || sess.Data.AccessToken == oldAccess {
		t.Fatal("refresh did not rotate the tokens")
	}
	if status, body := e.whoami(t, sess); status != 200 {
		t.Fatalf("resource after refresh: %d %v", status, body)
	}
	newRefresh := sess.Data.RefreshToken
	sess.Data.RefreshToken = oldRefresh
	if _, err := sess.RefreshTokens(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("replayed refresh token: %v", err)
	}
	sess.Data.RefreshToken = newRefresh
	if _, err := sess.RefreshTokens(context.Background()); err == nil {
		t.Fatal("the session survived a refresh-token replay")
	}

	// Revocation: a third session, revoked by the client, stops working at once.
	info, authURL = a.Start(t, aliceHandle)
	cb = e.approveWithForms(t, b, authURL, aliceHandle, alicePassword)
	sess, _ = a.Finish(t, info, cb.Get("code"))
	if status, _ := e.whoami(t, sess); status != 200 {
		t.Fatal("control: fresh session refused")
	}
	if err := sess.RevokeSession(context.Background()); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.whoami(t, sess); status == 200 {
		t.Fatal("revoked session still accepted")
	}
	// RFC 7009: revoking again (an unknown token) is still 200.
	d := newDPoPPoster(t)
	if resp := d.post(t, e.issuer+"/oauth/revoke", url.Values{"token": {"ref-unknown"}}, true); resp.StatusCode != 200 {
		t.Fatalf("revoke unknown token: %d", resp.StatusCode)
	}

	// RevokeAccount ends every session of the account (password change, takedown...).
	info, authURL = a.Start(t, aliceHandle)
	cb = e.approveWithForms(t, b, authURL, aliceHandle, alicePassword)
	sess, _ = a.Finish(t, info, cb.Get("code"))
	if status, _ := e.whoami(t, sess); status != 200 {
		t.Fatal("control: fresh session refused")
	}
	if err := e.p.RevokeAccount(context.Background(), syntax.DID(aliceDID)); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.whoami(t, sess); status == 200 {
		t.Fatal("session survived RevokeAccount")
	}
	// ... and signs the account out of the browser: the next request asks for the password again.
	_, authURL = a.Start(t, aliceHandle)
	b.get(authURL)
	if !strings.Contains(b.last, `name="password"`) {
		t.Fatal("browser still signed in after RevokeAccount")
	}
}
