package oauth_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
)

const verifierA = "verifier-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// parForm is a valid PAR body for the loopback client of e (scope atproto transition:generic).
func (e *env) parForm(verifier string) (url.Values, string) {
	cfg := ioauth.NewLocalhostConfig(e.callback.URL(), []string{"atproto", "transition:generic"})
	return url.Values{
		"client_id": {cfg.ClientID}, "response_type": {"code"}, "redirect_uri": {e.callback.URL()},
		"scope": {"atproto transition:generic"}, "state": {"st-" + verifier[len(verifier)-6:]},
		"code_challenge": {ioauth.S256CodeChallenge(verifier)}, "code_challenge_method": {"S256"},
	}, cfg.ClientID
}

func uniqueVerifier(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return "v" + hex.EncodeToString(b)
}

func TestPARChecks(t *testing.T) {
	e := newEnv(t)
	d := newDPoPPoster(t)
	par := e.issuer + "/oauth/par"
	send := func(mod func(url.Values)) (*http.Response, string) {
		form, _ := e.parForm(uniqueVerifier(t))
		if mod != nil {
			mod(form)
		}
		resp := d.post(t, par, form, true)
		if resp.StatusCode == 201 {
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			return resp, body["request_uri"].(string)
		}
		return resp, oauthErrorOf(resp)
	}
	// Positive control.
	resp, uri := send(nil)
	if resp.StatusCode != 201 || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:req-") {
		t.Fatalf("control PAR: %d %s", resp.StatusCode, uri)
	}
	cases := []struct {
		name string
		mod  func(url.Values)
		want string
	}{
		{"no PKCE", func(f url.Values) { f.Del("code_challenge"); f.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(f url.Values) { f.Set("code_challenge", verifierA[:43]); f.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"challenge without method", func(f url.Values) { f.Del("code_challenge_method") }, "invalid_request"},
		{"unregistered redirect_uri", func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:1/elsewhere") }, "invalid_request"},
		{"scope beyond the client's", func(f url.Values) { f.Set("scope", "atproto transition:chat.bsky") }, "invalid_scope"},
		{"scope without atproto", func(f url.Values) { f.Set("scope", "transition:generic") }, "invalid_scope"},
		{"response_type token", func(f url.Values) { f.Set("response_type", "token") }, "unsupported_response_type"},
		{"prompt=none", func(f url.Values) { f.Set("prompt", "none") }, "consent_required"},
		{"bad login_hint", func(f url.Values) { f.Set("login_hint", "not a handle!") }, "invalid_request"},
		{"unknown client", func(f url.Values) { f.Set("client_id", "http://localhost.evil/") }, "invalid_client"},
		{"JAR request object", func(f url.Values) { f.Set("request", "x.y.z") }, "request_not_supported"},
		{"response_mode form_post", func(f url.Values) { f.Set("response_mode", "form_post") }, "invalid_request"},
	}
	for _, c := range cases {
		resp, code := send(c.mod)
		if resp.StatusCode != 400 || code != c.want {
			t.Errorf("%s: %d %s, want 400 %s", c.name, resp.StatusCode, code, c.want)
		}
	}
	// A code challenge is never accepted twice.
	form, _ := e.parForm(verifierA)
	if resp := d.post(t, par, form, true); resp.StatusCode != 201 {
		t.Fatalf("control: %d %s", resp.StatusCode, oauthErrorOf(resp))
	}
	if resp := d.post(t, par, form, true); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_request" {
		t.Errorf("reused code_challenge accepted: %d", resp.StatusCode)
	}
	// DPoP: required, with the server's nonce, each proof once.
	form, _ = e.parForm(uniqueVerifier(t))
	if resp := d.post(t, par, form, false); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_dpop_proof" {
		t.Errorf("PAR without DPoP: %d", resp.StatusCode)
	}
	fresh := newDPoPPoster(t)
	proof, _ := ioauth.NewAuthDPoP("POST", par, "", fresh.key)
	req, _ := http.NewRequest("POST", par, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || resp.Header.Get("DPoP-Nonce") == "" || oauthErrorOf(resp) != "use_dpop_nonce" {
		t.Errorf("PAR without nonce: %d nonce=%q", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
	proof, _ = ioauth.NewAuthDPoP("POST", par, d.nonce, fresh.key)
	for i, want := range []int{201, 400} {
		form, _ = e.parForm(uniqueVerifier(t))
		req, _ := http.NewRequest("POST", par, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("DPoP proof use %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// A proof made for another endpoint.
	wrongHTU, _ := ioauth.NewAuthDPoP("POST", e.issuer+"/oauth/token", d.nonce, d.key)
	form, _ = e.parForm(uniqueVerifier(t))
	req, _ = http.NewRequest("POST", par, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", wrongHTU)
	resp, _ = http.DefaultClient.Do(req)
	if resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_dpop_proof" {
		t.Errorf("proof for another URL accepted: %d", resp.StatusCode)
	}
}

// codeFor pushes a request with verifier from d's key and approves it in a form browser.
func (e *env) codeFor(t *testing.T, d *dpopPoster, b *formBrowser, mod func(url.Values)) (url.Values, url.Values) {
	t.Helper()
	v := uniqueVerifier(t)
	form, clientID := e.parForm(v)
	if mod != nil {
		mod(form)
	}
	resp := d.post(t, e.issuer+"/oauth/par", form, true)
	if resp.StatusCode != 201 {
		t.Fatalf("PAR: %d %s", resp.StatusCode, oauthErrorOf(resp))
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	authURL := e.issuer + "/oauth/authorize?" + url.Values{"client_id": {clientID}, "request_uri": {body["request_uri"].(string)}}.Encode()
	cb := e.approveWithForms(t, b, authURL, aliceHandle, alicePassword)
	exchange := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {cb.Get("code")},
		"redirect_uri": {e.callback.URL()}, "code_verifier": {v}}
	return cb, exchange
}

func tokenOf(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, body)
	}
	return body
}

func TestTokenChecks(t *testing.T) {
	e := newEnv(t)
	d := newDPoPPoster(t)
	b := newFormBrowser(t)
	tokenURL := e.issuer + "/oauth/token"

	// Positive control.
	_, ex := e.codeFor(t, d, b, nil)
	tok := tokenOf(t, d.post(t, tokenURL, ex, true))
	if tok["token_type"] != "DPoP" || tok["sub"] != aliceDID || tok["scope"] != "atproto transition:generic" ||
		tok["expires_in"] != float64(3600) || !strings.HasPrefix(tok["refresh_token"].(string), "ref-") {
		t.Fatalf("token response: %v", tok)
	}

	// Wrong verifier; no verifier; another DPoP key; no DPoP at all; wrong redirect_uri.
	for _, c := range []struct {
		name     string
		mod      func(url.Values)
		poster   *dpopPoster
		proof    bool
		wantCode string
	}{
		{"wrong verifier", func(f url.Values) { f.Set("code_verifier", verifierA) }, d, true, "invalid_grant"},
		{"missing verifier", func(f url.Values) { f.Del("code_verifier") }, d, true, "invalid_request"},
		{"another DPoP key", nil, newDPoPPoster(t), true, "invalid_dpop_proof"},
		{"no DPoP", nil, d, false, "invalid_dpop_proof"},
		{"other redirect_uri", func(f url.Values) { f.Set("redirect_uri", e.callback.URL()+"x") }, d, true, "invalid_grant"},
	} {
		_, ex := e.codeFor(t, d, b, nil)
		if c.mod != nil {
			c.mod(ex)
		}
		resp := c.poster.post(t, tokenURL, ex, c.proof)
		if got := oauthErrorOf(resp); resp.StatusCode != 400 || got != c.wantCode {
			t.Errorf("%s: %d %s, want %s", c.name, resp.StatusCode, got, c.wantCode)
		}
	}

	// Refresh: another key is refused (the session stays usable with its own key).
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {ex.Get("client_id")}, "refresh_token": {tok["refresh_token"].(string)}}
	if resp := newDPoPPoster(t).post(t, tokenURL, refresh, true); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_dpop_proof" {
		t.Errorf("refresh with another DPoP key: %d", resp.StatusCode)
	}
	tok2 := tokenOf(t, d.post(t, tokenURL, refresh, true))
	if tok2["refresh_token"] == tok["refresh_token"] || tok2["sub"] != aliceDID {
		t.Fatalf("refresh: %v", tok2)
	}
	if resp := d.post(t, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {ex.Get("client_id")}}, true); oauthErrorOf(resp) != "unsupported_grant_type" {
		t.Error("password grant not refused as unsupported")
	}

	// Resource side, with hand-built proofs (indigo's host proofs carry ath).
	key := d.key
	sess := &ioauth.ClientSession{DPoPPrivateKey: key, Data: &ioauth.ClientSessionData{AccessToken: tok2["access_token"].(string)}}
	whoami := e.issuer + "/xrpc/com.example.whoami"
	call := func(s *ioauth.ClientSession, scheme string, withProof bool) *http.Response {
		req, _ := http.NewRequest("GET", whoami, nil)
		req.Header.Set("Authorization", scheme+" "+s.Data.AccessToken)
		if withProof {
			p, err := s.NewHostDPoP("GET", whoami)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := call(sess, "DPoP", true) // no nonce yet
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("resource without nonce: %d %v", resp.StatusCode, resp.Header)
	}
	sess.Data.DPoPHostNonce = resp.Header.Get("DPoP-Nonce")
	resp.Body.Close()
	if resp := call(sess, "DPoP", true); resp.StatusCode != 200 {
		t.Fatalf("control resource call: %d", resp.StatusCode)
	}
	other, _ := atcrypto.GeneratePrivateKeyP256()
	thief := &ioauth.ClientSession{DPoPPrivateKey: other, Data: &ioauth.ClientSessionData{AccessToken: sess.Data.AccessToken, DPoPHostNonce: sess.Data.DPoPHostNonce}}
	if resp := call(thief, "DPoP", true); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Errorf("token with another key's proof: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := call(sess, "DPoP", false); resp.StatusCode != 401 {
		t.Errorf("token without proof: %d", resp.StatusCode)
	}
	if resp := call(sess, "Bearer", true); resp.StatusCode != 401 {
		t.Errorf("DPoP-bound token as Bearer: %d", resp.StatusCode)
	}
	// The old access token died with the refresh.
	old := &ioauth.ClientSession{DPoPPrivateKey: key, Data: &ioauth.ClientSessionData{AccessToken: tok["access_token"].(string), DPoPHostNonce: sess.Data.DPoPHostNonce}}
	if resp := call(old, "DPoP", true); resp.StatusCode != 401 {
		t.Errorf("access token from before the refresh: %d", resp.StatusCode)
	}
	// A forged token (right shape, wrong key) is refused.
	forged := strings.Split(sess.Data.AccessToken, ".")
	forged[2] = strings.Repeat("A", len(forged[2]))
	f := &ioauth.ClientSession{DPoPPrivateKey: key, Data: &ioauth.ClientSessionData{AccessToken: strings.Join(forged, "."), DPoPHostNonce: sess.Data.DPoPHostNonce}}
	if resp := call(f, "DPoP", true); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("forged token: %d", resp.StatusCode)
	}
	// Revoking through the provider (account pages) takes effect at once, despite the liveness cache.
	list, err := e.p.Sessions(context.Background(), aliceDID)
	if err != nil || len(list) == 0 {
		t.Fatal(err)
	}
	for _, s := range list {
		if err := e.p.RevokeSession(context.Background(), aliceDID, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if resp := call(sess, "DPoP", true); resp.StatusCode != 401 {
		t.Errorf("revoked session still accepted: %d", resp.StatusCode)
	}
	if err := e.p.RevokeSession(context.Background(), bobDID, list[0].ID); err != oauth.ErrSessionNotFound {
		t.Errorf("revoking a missing session: %v", err)
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	d := newDPoPPoster(t)
	form, clientID := e.parForm(uniqueVerifier(t))
	resp := d.post(t, e.issuer+"/oauth/par", form, true)
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	authURL := e.issuer + "/oauth/authorize?" + url.Values{"client_id": {clientID}, "request_uri": {body["request_uri"].(string)}}.Encode()

	b := newFormBrowser(t)
	resp = b.get(authURL)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'sha256-", "form-action 'self' " + strings.TrimSuffix(e.callback.URL(), "/callback"), "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows scripts or inline code: %s", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("page headers: %v", resp.Header)
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("device cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("dev (http://localhost) cookie marked Secure: browsers would drop it: %s", cookie)
	}
	for _, want := range []string{`<meta name="viewport"`, `<label for="identifier">`, `<label for="password">`, `autocomplete="current-password"`, `lang="en"`, "development app"} {
		if !strings.Contains(b.last, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}

	// Wrong password, unknown account: the same message, which does not say which part was wrong.
	signInForm := b.hidden()
	signIn := func(id, pw string) *http.Response {
		f := url.Values{}
		for k, v := range signInForm {
			f[k] = v
		}
		f.Set("identifier", id)
		f.Set("password", pw)
		return b.post(e.issuer+oauth.PathSignIn, f)
	}
	for _, c := range [][2]string{{aliceHandle, "wrong"}, {"nobody.test", alicePassword}, {aliceDID, "wrong"}} {
		if resp := signIn(c[0], c[1]); resp.StatusCode != 401 || !strings.Contains(b.last, "Invalid identifier or password") {
			t.Errorf("sign-in %v: %d", c, resp.StatusCode)
		}
	}
	// An app password is refused on this page.
	apw := "abcd-efgh-ijkl-mnop"
	if err := e.store.CreateAppPassword(context.Background(), aliceDID, "test", hashPassword(apw), true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if resp := signIn(aliceHandle, apw); resp.StatusCode != 401 || !strings.Contains(b.last, "Invalid identifier or password") {
		t.Errorf("app password on the sign-in page: %d", resp.StatusCode)
	}
	// Without (or with a wrong) CSRF token, nothing happens.
	f := url.Values{"request_uri": signInForm["request_uri"], "client_id": signInForm["client_id"]}
	f.Set("identifier", aliceHandle)
	f.Set("password", alicePassword)
	if resp := b.post(e.issuer+oauth.PathSignIn, f); resp.StatusCode != 403 {
		t.Errorf("sign-in without CSRF token: %d", resp.StatusCode)
	}
	// Email works as identifier (positive control), and leads to the consent page.
	if resp := signIn(aliceHandle+"@example.com", alicePassword); resp.StatusCode != 200 || !strings.Contains(b.last, `value="approve"`) {
		t.Fatalf("sign-in by email: %d", resp.StatusCode)
	}
	consent := b.hidden()
	for _, want := range []string{"@" + aliceHandle, "Know which account you are", "Create, update and delete any of your records", "localhost"} {
		if !strings.Contains(b.last, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	noCSRF := url.Values{}
	for k, v := range consent {
		noCSRF[k] = v
	}
	noCSRF.Del("csrf_token")
	noCSRF.Set("action", "approve")
	if resp := b.post(e.issuer+oauth.PathConsent, noCSRF); resp.StatusCode != 403 || resp.Header.Get("Location") != "" {
		t.Errorf("consent without CSRF token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A cross-site POST (Origin of another site) is refused even with the right token.
	req, _ := http.NewRequest("POST", e.issuer+oauth.PathConsent, strings.NewReader(url.Values{"action": {"approve"}}.Encode()+"&"+consent.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := b.client.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("cross-site consent POST: %v %v", resp.StatusCode, err)
	}
	// Another browser with its own cookie cannot use this page's token, nor open the request.
	other := newFormBrowser(t)
	other.get(authURL)
	if !strings.Contains(other.last, "another browser") {
		t.Errorf("a second browser opened the request: %s", other.last)
	}
	stolen := url.Values{}
	for k, v := range consent {
		stolen[k] = v
	}
	stolen.Set("action", "approve")
	if resp := other.post(e.issuer+oauth.PathConsent, stolen); resp.StatusCode != 403 {
		t.Errorf("consent from another browser with a stolen token: %d", resp.StatusCode)
	}
	// Consent for an account not signed in on this browser.
	bobForm := url.Values{}
	for k, v := range consent {
		bobForm[k] = v
	}
	bobForm.Set("account", bobDID)
	bobForm.Set("action", "approve")
	if resp := b.post(e.issuer+oauth.PathConsent, bobForm); resp.StatusCode != 403 {
		t.Errorf("consent for an account not signed in here: %d", resp.StatusCode)
	}
	// Deny: access_denied with state and iss.
	consent.Set("action", "deny")
	resp = b.post(e.issuer+oauth.PathConsent, consent)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 303 || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != form.Get("state") ||
		loc.Query().Get("iss") != e.issuer || loc.Query().Get("code") != "" {
		t.Fatalf("deny: %d %s", resp.StatusCode, loc)
	}
	// The request is gone.
	b.get(authURL)
	if !strings.Contains(b.last, "unknown or has expired") {
		t.Errorf("denied request still open")
	}

	// Fragment response mode.
	cb, _ := e.codeFor(t, d, b, func(f url.Values) { f.Set("response_mode", "fragment") })
	_, rawFrag, _ := strings.Cut(b.rawLoc, "#")
	frag, _ := url.ParseQuery(rawFrag) // what URLSearchParams(location.hash.slice(1)) gives an app
	if cb.Get("code") != "" || !strings.HasPrefix(frag.Get("code"), "cod-") || frag.Get("iss") != e.issuer {
		t.Errorf("fragment mode: %s", b.rawLoc)
	}

	// The sign-in rate limit: 30 attempts per identifier per 5 minutes.
	_, authURL2 := e.newApp().Start(t, "")
	rl := newFormBrowser(t)
	rl.get(authURL2)
	var last *http.Response
	for range 31 {
		f := rl.hidden()
		f.Set("identifier", "bob.test")
		f.Set("password", "wrong")
		last = rl.post(e.issuer+oauth.PathSignIn, f)
	}
	if last.StatusCode != 429 || !strings.Contains(rl.last, "Too many") {
		t.Errorf("31st attempt: %d", last.StatusCode)
	}
}

// TestDeactivatedAccount: as in the reference, a deactivated account signs in (the consent page and the chooser
// say it is deactivated), consents, and its app exchanges the code and refreshes; a taken-down one is refused at
// sign-in and at refresh (the server also ends its sessions then: pds.TestOAuthSessionsEnd). Its writes are
// refused by the XRPC layer (pds.TestOAuthDeactivatedAccount).
func TestDeactivatedAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	if err := e.store.SetDeactivated(ctx, bobDID, &now, nil); err != nil {
		t.Fatal(err)
	}
	app := e.newApp()
	info, authURL := app.Start(t, "")
	b := newFormBrowser(t)
	b.get(authURL)
	form := b.hidden()
	form.Set("identifier", "bob.test")
	form.Set("password", alicePassword)
	if resp := b.post(e.issuer+oauth.PathSignIn, form); resp.StatusCode != 200 || !strings.Contains(b.last, `value="approve"`) ||
		!strings.Contains(b.last, `id="deactivated"`) {
		t.Fatalf("sign-in of a deactivated account: %d %s", resp.StatusCode, b.last)
	}
	// The chooser lists it, marked.
	_, authURL2 := e.newApp().Start(t, "")
	b.get(authURL2)
	if !strings.Contains(b.last, "Choose an account") || !strings.Contains(b.last, "@bob.test <span class=\"badge\">deactivated</span>") {
		t.Errorf("chooser: %s", b.last)
	}
	// Consent, code exchange, a resource call and a refresh.
	b.get(authURL + "&account=" + url.QueryEscape(bobDID))
	if !strings.Contains(b.last, `id="deactivated"`) {
		t.Errorf("consent page from the chooser: %s", b.last)
	}
	form = b.hidden()
	form.Set("account", bobDID)
	form.Set("action", "approve")
	resp := b.post(e.issuer+oauth.PathConsent, form)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %s", resp.StatusCode, b.last)
	}
	sess, tok := app.Finish(t, info, loc.Query().Get("code"))
	if tok.Subject != bobDID {
		t.Fatalf("subject %q", tok.Subject)
	}
	if status, body := e.whoami(t, sess); status != 200 || body["did"] != bobDID {
		t.Errorf("resource call: %d %v", status, body)
	}
	if _, err := sess.RefreshTokens(ctx); err != nil {
		t.Fatalf("refresh of a deactivated account: %v", err)
	}

	// Taken down: refused at sign-in (with the reason), and its refresh token no longer works.
	if err := e.store.SetAccountTakedown(ctx, bobDID, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.RefreshTokens(ctx); err == nil {
		t.Error("refresh of a taken-down account")
	}
	_, authURL3 := e.newApp().Start(t, "")
	b3 := newFormBrowser(t)
	b3.get(authURL3)
	form = b3.hidden()
	form.Set("identifier", "bob.test")
	form.Set("password", alicePassword)
	if resp := b3.post(e.issuer+oauth.PathSignIn, form); resp.StatusCode != 403 || !strings.Contains(b3.last, "taken down") ||
		strings.Contains(b3.last, `value="approve"`) {
		t.Errorf("sign-in of a taken-down account: %d %s", resp.StatusCode, b3.last)
	}
}

// TestSecureCookieInProduction: on an https issuer the device cookie is Secure with the __Host- prefix.
func TestSecureCookieInProduction(t *testing.T) {
	store, err := accountstore.Open(context.Background(), t.TempDir()+"/a.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := oauth.New(oauth.Config{Issuer: "https://pds.example.com", ServiceDID: "did:web:pds.example.com",
		Secret: []byte("0123456789abcdef0123456789abcdef"), ClientHTTP: http.DefaultClient},
		oauth.Deps{Store: store, Accounts: &testAccounts{store}})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	p.Register(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/oauth/authorize?request_uri=bad", nil))
	c := rec.Header().Get("Set-Cookie")
	if !strings.HasPrefix(c, "__Host-oauth-device=") || !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") {
		t.Fatalf("production cookie: %q", c)
	}
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 400 || !strings.Contains(string(body), "pushed authorization request") {
		t.Fatalf("authorize without PAR: %d", rec.Code)
	}
}
