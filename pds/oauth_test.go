package pds_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
)

func postRecord(did, collection, text string) map[string]any {
	rec := map[string]any{"$type": collection, "createdAt": time.Now().UTC().Format(time.RFC3339)}
	if collection == "app.bsky.feed.post" {
		rec["text"] = text
	} else {
		rec["subject"] = map[string]any{"uri": "at://" + did + "/app.bsky.feed.post/3jzfcijpj2z2a",
			"cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}
	}
	return map[string]any{"repo": did, "collection": collection, "record": rec}
}

// TestOAuthIndigoClient: indigo's Go OAuth client signs a user of this PDS in through the whole flow: discovery
// from the handle, PAR, sign-in and consent in chromium, token, an authenticated createRecord through
// ClientSession.APIClient(), refresh, revoke.
func TestOAuthIndigoClient(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	open := testbrowser.New(t)
	app := newOAuthApp(t, p, "atproto", "transition:generic")
	sess := app.signIn(open, alice)
	if sess.Data.AccountDID.String() != alice.DID || !strings.Contains(strings.Join(sess.Data.Scopes, " "), "transition:generic") {
		t.Fatalf("session: %+v", sess.Data)
	}
	ctx := context.Background()
	api := sess.APIClient()
	var out struct{ URI, CID string }
	if err := api.Post(ctx, "com.atproto.repo.createRecord", postRecord(alice.DID, "app.bsky.feed.post", "hello from indigo"), &out); err != nil {
		t.Fatalf("createRecord: %v", err)
	}
	if !strings.HasPrefix(out.URI, "at://"+alice.DID+"/app.bsky.feed.post/") {
		t.Fatalf("createRecord: %+v", out)
	}
	rkey := out.URI[strings.LastIndex(out.URI, "/")+1:]
	got := testpds.MustOK(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""))
	if got["value"].(map[string]any)["text"] != "hello from indigo" {
		t.Fatalf("getRecord: %v", got)
	}

	oldAccess := sess.Data.AccessToken
	if _, err := sess.RefreshTokens(ctx); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if sess.Data.AccessToken == oldAccess {
		t.Fatal("refresh gave the same access token")
	}
	if err := api.Post(ctx, "com.atproto.repo.createRecord", postRecord(alice.DID, "app.bsky.feed.post", "after refresh"), &out); err != nil {
		t.Fatalf("createRecord after refresh: %v", err)
	}
	// The nonce a successful DPoP response carries is the one the next proof uses.
	r := oauthCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)
	if r.Status != 200 || r.Header.Get("DPoP-Nonce") == "" || r.JSON()["did"] != alice.DID {
		t.Fatalf("getSession: %s (nonce %q)", r, r.Header.Get("DPoP-Nonce"))
	}
	if err := app.ca.Logout(ctx, sess.Data.AccountDID, sess.Data.SessionID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	r = oauthCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("revoked session still works: %s", r)
	}
	if _, err := sess.RefreshTokens(ctx); err == nil {
		t.Fatal("the revoked session's refresh token still works")
	}
}

const scopeAppViewDID = "did:web:appview.test"

// TestOAuthScopes: what a grant allows through the full server, each refusal after a positive control: repo:,
// blob:, rpc: on a proxied call and on getServiceAuth, atproto alone, account:email on getSession, the
// methods kept from OAuth.
func TestOAuthScopes(t *testing.T) {
	plcURL := testplc.Shared(t)
	av := testservice.Start(t, plcURL, scopeAppViewDID)
	for _, m := range []string{"app.bsky.notification.listNotifications", "app.bsky.notification.getUnreadCount"} {
		av.Handle(m, func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"ok": true})
		})
	}
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL": av.URL, "PDS_BSKY_APP_VIEW_DID": scopeAppViewDID,
	}})
	alice := p.CreateAccount("alice")
	open := testbrowser.New(t)
	const svcDID = "did:web:video.example.com"

	app := newOAuthApp(t, p, "atproto",
		"repo:app.bsky.feed.post?action=create",
		"blob:image/*",
		"rpc:app.bsky.notification.listNotifications?aud="+scopeAppViewDID+"%23bsky_appview",
		"rpc:com.atproto.repo.uploadBlob?aud="+svcDID+"%23video")
	sess := app.signIn(open, alice)
	call := func(method, nsid string, q url.Values, body any, h map[string]string) *testpds.Response {
		t.Helper()
		return oauthCall(t, p, sess, method, nsid, q, body, h)
	}

	t.Run("repo", func(t *testing.T) {
		r := call("POST", "com.atproto.repo.createRecord", nil, postRecord(alice.DID, "app.bsky.feed.post", "allowed"), nil)
		out := testpds.MustOK(t, r)
		uri, _ := out["uri"].(string)
		before := testpds.MustOK(t, p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {alice.DID}}, ""))
		wantScopeMissing(t, call("POST", "com.atproto.repo.createRecord", nil, postRecord(alice.DID, "app.bsky.feed.like", "x"), nil),
			"repo:app.bsky.feed.like?action=create")
		rkey := uri[strings.LastIndex(uri, "/")+1:]
		wantScopeMissing(t, call("POST", "com.atproto.repo.deleteRecord", nil, map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": rkey}, nil),
			"repo:app.bsky.feed.post?action=delete")
		// putRecord needs create and update.
		wantScopeMissing(t, call("POST", "com.atproto.repo.putRecord", nil, map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": rkey,
			"record": map[string]any{"$type": "app.bsky.feed.post", "text": "edited", "createdAt": "2026-01-01T00:00:00Z"}}, nil),
			"repo:app.bsky.feed.post?action=update")
		// applyWrites: one allowed create and one denied: nothing is written.
		wantScopeMissing(t, call("POST", "com.atproto.repo.applyWrites", nil, map[string]any{"repo": alice.DID, "writes": []any{
			map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": map[string]any{"$type": "app.bsky.feed.post", "text": "a", "createdAt": "2026-01-01T00:00:00Z"}},
			map[string]any{"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": rkey},
		}}, nil), "repo:app.bsky.feed.post?action=delete")
		after := testpds.MustOK(t, p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {alice.DID}}, ""))
		if before["rev"] != after["rev"] {
			t.Fatalf("a refused write changed the repo: %v -> %v", before, after)
		}
		// A legacy session of the same account is not limited by any of this.
		testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", postRecord(alice.DID, "app.bsky.feed.like", "x"), alice.AccessJwt))
	})

	t.Run("blob", func(t *testing.T) {
		png := testpds.PNG(1, 200)
		r := call("POST", "com.atproto.repo.uploadBlob", nil, png, map[string]string{"Content-Type": "image/png"})
		testpds.MustOK(t, r)
		wantScopeMissing(t, call("POST", "com.atproto.repo.uploadBlob", nil, []byte("plain text"), map[string]string{"Content-Type": "text/plain"}),
			"blob:text/plain")
	})

	t.Run("rpc proxied", func(t *testing.T) {
		n := len(av.Calls())
		testpds.MustOK(t, call("GET", "app.bsky.notification.listNotifications", nil, nil, nil))
		if len(av.Calls()) != n+1 || av.Last(t).Iss != alice.DID {
			t.Fatalf("the AppView did not get the call: %d calls", len(av.Calls()))
		}
		wantScopeMissing(t, call("GET", "app.bsky.notification.getUnreadCount", nil, nil, nil),
			"rpc:app.bsky.notification.getUnreadCount?aud="+scopeAppViewDID+"#bsky_appview")
		// The same method at another service (atproto-proxy) is outside the grant too.
		wantScopeMissing(t, call("GET", "app.bsky.notification.listNotifications", nil, nil, map[string]string{"atproto-proxy": "did:web:other.example.com#bsky_appview"}),
			"rpc:app.bsky.notification.listNotifications?aud=did:web:other.example.com#bsky_appview")
		if len(av.Calls()) != n+1 {
			t.Fatal("a refused call reached the AppView")
		}
		// getPreferences is served here but needs rpc: at the AppView as well.
		wantScopeMissing(t, call("GET", "app.bsky.actor.getPreferences", nil, nil, nil),
			"rpc:app.bsky.actor.getPreferences?aud="+scopeAppViewDID+"#bsky_appview")
	})

	t.Run("getServiceAuth", func(t *testing.T) {
		// The grant names did#service (rpc: audiences are service references); the app asks for that audience.
		aud := svcDID + "#video"
		r := call("GET", "com.atproto.server.getServiceAuth", url.Values{"aud": {aud}, "lxm": {"com.atproto.repo.uploadBlob"}}, nil, nil)
		if tok, _ := testpds.MustOK(t, r)["token"].(string); tok == "" {
			t.Fatalf("getServiceAuth: %s", r)
		}
		wantScopeMissing(t, call("GET", "com.atproto.server.getServiceAuth", url.Values{"aud": {aud}, "lxm": {"com.atproto.repo.createRecord"}}, nil, nil),
			"rpc:com.atproto.repo.createRecord?aud="+aud)
		wantScopeMissing(t, call("GET", "com.atproto.server.getServiceAuth", url.Values{"aud": {aud}}, nil, nil),
			"rpc:*?aud="+aud)
		// Audiences match exactly, as the reference's: the bare DID is another audience.
		wantScopeMissing(t, call("GET", "com.atproto.server.getServiceAuth", url.Values{"aud": {svcDID}, "lxm": {"com.atproto.repo.uploadBlob"}}, nil, nil),
			"rpc:com.atproto.repo.uploadBlob?aud="+svcDID)
	})

	t.Run("account and refused methods", func(t *testing.T) {
		out := testpds.MustOK(t, call("GET", "com.atproto.server.getSession", nil, nil, nil))
		if out["did"] != alice.DID || out["handle"] != alice.Handle {
			t.Fatalf("getSession: %v", out)
		}
		if _, ok := out["email"]; ok {
			t.Fatalf("getSession shows the email without account:email: %v", out)
		}
		wantScopeMissing(t, call("POST", "com.atproto.server.deactivateAccount", nil, map[string]any{}, nil), "account:status?action=manage")
		wantScopeMissing(t, call("POST", "com.atproto.server.requestEmailUpdate", nil, nil, nil), "account:email?action=manage")
		wantScopeMissing(t, call("POST", "com.atproto.identity.updateHandle", nil, map[string]any{"handle": "alice2.test"}, nil), "identity:handle")
		wantScopeMissing(t, call("POST", "com.atproto.identity.requestPlcOperationSignature", nil, nil, nil), "identity:*")
		wantScopeMissing(t, call("POST", "com.atproto.repo.importRepo", nil, []byte{0}, map[string]string{"Content-Type": "application/vnd.ipld.car"}), "account:repo?action=manage")
		for _, m := range []struct{ method, nsid string }{
			{"POST", "com.atproto.server.createAppPassword"}, {"GET", "com.atproto.server.listAppPasswords"},
			{"POST", "com.atproto.server.revokeAppPassword"}, {"GET", "com.atproto.server.getAccountInviteCodes"},
			{"POST", "com.atproto.server.requestAccountDelete"},
		} {
			var body any
			if m.method == "POST" {
				body = map[string]any{"name": "x"}
			}
			r := call(m.method, m.nsid, nil, body, nil)
			if r.Status != http.StatusForbidden || r.ErrorName() != "Forbidden" || r.JSON()["message"] != "OAuth credentials are not supported for this endpoint" {
				t.Errorf("%s: %s", m.nsid, r)
			}
		}
		// Still active: the refused deactivation did nothing.
		if st := testpds.MustOK(t, call("GET", "com.atproto.server.checkAccountStatus", nil, nil, nil)); st["activated"] != true {
			t.Fatalf("checkAccountStatus: %v", st)
		}
	})

	t.Run("atproto only", func(t *testing.T) {
		bob := p.CreateAccount("bob")
		only := newOAuthApp(t, p, "atproto").signIn(open, bob)
		out := testpds.MustOK(t, oauthCall(t, p, only, "GET", "com.atproto.server.getSession", nil, nil, nil))
		if out["did"] != bob.DID {
			t.Fatalf("getSession: %v", out)
		}
		wantScopeMissing(t, oauthCall(t, p, only, "POST", "com.atproto.repo.createRecord", nil, postRecord(bob.DID, "app.bsky.feed.post", "no"), nil),
			"repo:app.bsky.feed.post?action=create")
		wantScopeMissing(t, oauthCall(t, p, only, "POST", "com.atproto.repo.uploadBlob", nil, testpds.PNG(2, 100), map[string]string{"Content-Type": "image/png"}),
			"blob:image/png")
		// With account:email the address is shown.
		carol := p.CreateAccount("carol")
		withEmail := newOAuthApp(t, p, "atproto", "account:email").signIn(open, carol)
		out = testpds.MustOK(t, oauthCall(t, p, withEmail, "GET", "com.atproto.server.getSession", nil, nil, nil))
		if out["email"] != carol.Email {
			t.Fatalf("getSession with account:email: %v", out)
		}
	})
}

// TestOAuthTokens: the DPoP rules on XRPC, each after a positive control: a bound token sent as Bearer, a legacy
// token carrying cnf or lxm, a missing or stale nonce (401, WWW-Authenticate use_dpop_nonce, DPoP-Nonce).
func TestOAuthTokens(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	sess := newOAuthApp(t, p, "atproto", "transition:generic").signIn(testbrowser.New(t), alice)

	r := oauthCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)
	nonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 200 || nonce == "" {
		t.Fatalf("control: %s, nonce %q", r, nonce)
	}

	t.Run("bound token as Bearer", func(t *testing.T) {
		tok, _ := sess.GetHostAccessData()
		r := p.Query("com.atproto.server.getSession", nil, tok)
		if r.Status != http.StatusBadRequest || r.ErrorName() != "InvalidToken" {
			t.Fatalf("DPoP-bound token as Bearer: %s", r)
		}
	})

	t.Run("legacy token with cnf or lxm", func(t *testing.T) {
		forge := func(extra map[string]any) string {
			claims := jwt.MapClaims{"scope": "com.atproto.access", "sub": alice.DID, "aud": p.Config.ServiceDID,
				"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
			for k, v := range extra {
				claims[k] = v
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
			tok.Header["typ"] = "at+jwt"
			s, err := tok.SignedString(p.Config.JWTSecret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, forge(nil))) // control: a plain session token
		for name, extra := range map[string]map[string]any{
			"cnf": {"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
			"lxm": {"lxm": "com.atproto.server.getSession"},
		} {
			if r := p.Query("com.atproto.server.getSession", nil, forge(extra)); r.Status != http.StatusBadRequest || r.ErrorName() != "InvalidToken" {
				t.Errorf("legacy token with %s: %s", name, r)
			}
		}
	})

	t.Run("nonce", func(t *testing.T) {
		for name, n := range map[string]string{"missing": "", "stale": "bm90LWEtbm9uY2UtZnJvbS10aGlzLXNlcnZlcg"} {
			sess.UpdateHostDPoPNonce(context.Background(), n)
			r := dpopCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)
			if r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) ||
				r.Header.Get("DPoP-Nonce") == "" || r.ErrorName() != "use_dpop_nonce" {
				t.Fatalf("%s nonce: %s %v", name, r, r.Header)
			}
			// The client retries with the nonce it was given, and succeeds.
			sess.UpdateHostDPoPNonce(context.Background(), r.Header.Get("DPoP-Nonce"))
			testpds.MustOK(t, dpopCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil))
		}
		// A proof without the DPoP header at all.
		tok, _ := sess.GetHostAccessData()
		req, _ := http.NewRequest("GET", p.URL+"/xrpc/com.atproto.server.getSession", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		r := p.Do(req, "")
		if r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "DPoP") {
			t.Fatalf("no proof: %s", r)
		}
	})
}

// TestOAuthSessionsEnd: password change, deactivation, takedown and deletion end the account's OAuth sessions
// (access and refresh tokens), as they end legacy ones.
func TestOAuthSessionsEnd(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	open := testbrowser.New(t)
	for _, tc := range []struct {
		name string
		end  func(a *testpds.Account)
	}{
		{"password change", func(a *testpds.Account) {
			testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountPassword", map[string]any{"did": a.DID, "password": "a-new-password"}))
		}},
		{"deactivation", func(a *testpds.Account) {
			r := p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, a.AccessJwt)
			testpds.WantStatus(t, r, 200, "")
		}},
		{"takedown", func(a *testpds.Account) {
			testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
				"subject": map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": a.DID}, "takedown": map[string]any{"applied": true, "ref": "t1"}}))
		}},
		{"deletion", func(a *testpds.Account) {
			testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.deleteAccount", map[string]any{"did": a.DID}), 200, "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := p.CreateAccount(strings.ReplaceAll(tc.name, " ", "")[:6] + "x")
			sess := newOAuthApp(t, p, "atproto", "transition:generic").signIn(open, a)
			testpds.MustOK(t, oauthCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)) // control
			tc.end(a)
			r := oauthCall(t, p, sess, "GET", "com.atproto.server.getSession", nil, nil, nil)
			if r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("after %s: %s", tc.name, r)
			}
			if _, err := sess.RefreshTokens(context.Background()); err == nil {
				t.Fatalf("after %s the refresh token still works", tc.name)
			}
			var apiErr *atclient.APIError
			err := sess.APIClient().Get(context.Background(), "com.atproto.server.getSession", nil, nil)
			if err == nil || (errors.As(err, &apiErr) && apiErr.StatusCode == 200) {
				t.Fatalf("after %s the client still reads: %v", tc.name, err)
			}
		})
	}
}

// TestOAuthRoutes: the provider's routes in the server's route table: discovery documents naming this server,
// CORS on them and on XRPC (the server's CORS middleware answers the preflights, allowing the DPoP header, and
// exposes DPoP-Nonce and WWW-Authenticate).
func TestOAuthRoutes(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, p.URL+"/.well-known/oauth-protected-resource", &prm)
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		PAREndpoint   string `json:"pushed_authorization_request_endpoint"`
	}
	getJSON(t, p.URL+"/.well-known/oauth-authorization-server", &meta)
	if prm.Resource != p.URL || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != p.URL ||
		meta.Issuer != p.URL || meta.TokenEndpoint != p.URL+"/oauth/token" || meta.PAREndpoint != p.URL+"/oauth/par" {
		t.Fatalf("metadata: %+v %+v", prm, meta)
	}
	for _, path := range []string{"/oauth/par", "/oauth/token", "/xrpc/com.atproto.repo.createRecord"} {
		req, _ := http.NewRequest(http.MethodOptions, p.URL+path, nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,dpop,authorization")
		r := p.Do(req, "")
		h := r.Header
		if r.Status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" || len(h.Values("Access-Control-Allow-Origin")) != 1 ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "dpop") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight %s: %d %v", path, r.Status, h)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/xrpc/com.atproto.server.describeServer", nil)
	req.Header.Set("Origin", "https://app.example.com")
	if r := p.Do(req, ""); !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "DPoP-Nonce") ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Errorf("XRPC CORS: %v", r.Header)
	}
}
