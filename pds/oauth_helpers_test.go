package pds_test

// An atproto app signing people of the test PDS in with indigo's Go OAuth client (atproto/auth/oauth), and a
// real browser (internal/testbrowser) on the PDS's sign-in and consent pages.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// pdsDirectory resolves handles as an app resolving a handle on this PDS would (com.atproto.identity.resolveHandle:
// test handles have no DNS), and DIDs at the PLC directory.
type pdsDirectory struct {
	pdsURL string
	base   *identity.BaseDirectory
}

func newPDSDirectory(p *testpds.PDS) *pdsDirectory {
	return &pdsDirectory{pdsURL: p.URL, base: &identity.BaseDirectory{PLCURL: p.PLCURL, SkipHandleVerification: true}}
}

func (d *pdsDirectory) LookupHandle(ctx context.Context, h syntax.Handle) (*identity.Identity, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		d.pdsURL+"/xrpc/com.atproto.identity.resolveHandle?handle="+url.QueryEscape(h.String()), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct{ DID string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil, fmt.Errorf("%w: %s: HTTP %d", identity.ErrHandleNotFound, h, resp.StatusCode)
	}
	did, err := syntax.ParseDID(out.DID)
	if err != nil {
		return nil, err
	}
	ident, err := d.base.LookupDID(ctx, did)
	if err != nil {
		return nil, err
	}
	ident.Handle = h
	return ident, nil
}

func (d *pdsDirectory) LookupDID(ctx context.Context, did syntax.DID) (*identity.Identity, error) {
	return d.base.LookupDID(ctx, did)
}

func (d *pdsDirectory) Lookup(ctx context.Context, id syntax.AtIdentifier) (*identity.Identity, error) {
	if h, err := id.AsHandle(); err == nil {
		return d.LookupHandle(ctx, h)
	}
	did, err := id.AsDID()
	if err != nil {
		return nil, err
	}
	return d.LookupDID(ctx, did)
}

func (d *pdsDirectory) Purge(context.Context, syntax.AtIdentifier) error { return nil }

// oauthApp is a development (loopback) client app: indigo's ClientApp, its redirect target on 127.0.0.1.
type oauthApp struct {
	t        testing.TB
	ca       *ioauth.ClientApp
	callback chan url.Values
}

func newOAuthApp(t testing.TB, p *testpds.PDS, scopes ...string) *oauthApp {
	t.Helper()
	a := &oauthApp{t: t, callback: make(chan url.Values, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			a.callback <- r.URL.Query()
		}
		io.WriteString(w, "<!doctype html><title>app</title><p>signed in</p>")
	}))
	t.Cleanup(srv.Close)
	cfg := ioauth.NewLocalhostConfig(srv.URL+"/callback", scopes)
	a.ca = ioauth.NewClientApp(&cfg, ioauth.NewMemStore())
	a.ca.Client = &http.Client{Timeout: 10 * time.Second}
	a.ca.Dir = newPDSDirectory(p)
	return a
}

func getJSON(t testing.TB, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// discover goes from a handle to the account's authorization server as an app does: handle -> DID -> PDS ->
// protected-resource metadata -> authorization-server metadata. (indigo's ClientApp.StartAuthFlow does the same
// but accepts only https servers without a port, which a development PDS on loopback is not.)
func (a *oauthApp) discover(id string) (*ioauth.AuthServerMetadata, syntax.DID) {
	t := a.t
	t.Helper()
	atid, err := syntax.ParseAtIdentifier(id)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := a.ca.Dir.Lookup(context.Background(), atid)
	if err != nil {
		t.Fatalf("resolving %s: %v", id, err)
	}
	pdsURL := ident.PDSEndpoint()
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, pdsURL+"/.well-known/oauth-protected-resource", &prm)
	if prm.Resource != pdsURL || len(prm.AuthorizationServers) != 1 {
		t.Fatalf("protected resource metadata of %s: %+v", pdsURL, prm)
	}
	var meta ioauth.AuthServerMetadata
	getJSON(t, prm.AuthorizationServers[0]+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != prm.AuthorizationServers[0] || !meta.RequirePushedAuthorizationRequests {
		t.Fatalf("authorization server metadata: %+v", meta)
	}
	return &meta, ident.DID
}

// authorize sends the PAR for id (a handle, or a DID: a deactivated account's handle does not resolve) and
// returns the URL to open in the browser.
func (a *oauthApp) authorize(id string) string {
	t := a.t
	t.Helper()
	meta, did := a.discover(id)
	info, err := a.ca.SendAuthRequest(context.Background(), meta, a.ca.Config.Scopes, id)
	if err != nil {
		t.Fatalf("PAR: %v", err)
	}
	info.AccountDID = &did
	if err := a.ca.Store.SaveAuthRequestInfo(context.Background(), *info); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"client_id": {a.ca.Config.ClientID}, "request_uri": {info.RequestURI}}
	return meta.AuthorizationEndpoint + "?" + q.Encode()
}

// signIn runs the whole flow in a fresh browser context and returns the app's session.
func (a *oauthApp) signIn(open func() (context.Context, context.CancelFunc), acct *testpds.Account) *ioauth.ClientSession {
	t := a.t
	t.Helper()
	authURL := a.authorize(acct.Handle)
	ctx, cancel := open()
	defer cancel()
	testbrowser.SignInAndApprove(t, ctx, authURL, acct.Handle, acct.Password)
	return a.finish()
}

// finish waits for the browser to reach the app's redirect URI and exchanges the code: the app's session.
func (a *oauthApp) finish() *ioauth.ClientSession {
	t := a.t
	t.Helper()
	var params url.Values
	select {
	case params = <-a.callback:
	case <-time.After(20 * time.Second):
		t.Fatal("the browser never reached the app's redirect URI")
	}
	data, err := a.ca.ProcessCallback(context.Background(), params)
	if err != nil {
		t.Fatalf("callback %v: %v", params, err)
	}
	sess, err := a.ca.ResumeSession(context.Background(), data.AccountDID, data.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// dpopCall sends one XRPC request with the session's access token and a DPoP proof carrying the session's
// current host nonce, exactly once (no retry, no refresh), so a test sees the server's first answer.
func dpopCall(t testing.TB, p *testpds.PDS, sess *ioauth.ClientSession, method, nsid string, query url.Values, body any, headers map[string]string) *testpds.Response {
	t.Helper()
	u := p.URL + "/xrpc/" + nsid
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			raw, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(raw)
	}
	full := u
	if len(query) > 0 {
		full += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, full, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	proof, err := sess.NewHostDPoP(method, u)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sess.GetHostAccessData()
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	return p.Do(req, "")
}

// oauthCall is dpopCall as a client makes it: a use_dpop_nonce answer is retried once with the new nonce.
func oauthCall(t testing.TB, p *testpds.PDS, sess *ioauth.ClientSession, method, nsid string, query url.Values, body any, headers map[string]string) *testpds.Response {
	t.Helper()
	r := dpopCall(t, p, sess, method, nsid, query, body, headers)
	if r.Status == http.StatusUnauthorized && strings.Contains(r.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		sess.UpdateHostDPoPNonce(context.Background(), r.Header.Get("DPoP-Nonce"))
		r = dpopCall(t, p, sess, method, nsid, query, body, headers)
	}
	if n := r.Header.Get("DPoP-Nonce"); n != "" {
		sess.UpdateHostDPoPNonce(context.Background(), n)
	}
	return r
}

// wantScopeMissing checks the reference's refusal of a permission the grant lacks.
func wantScopeMissing(t testing.TB, r *testpds.Response, scope string) {
	t.Helper()
	want := fmt.Sprintf("Missing required scope %q", scope)
	if r.Status != http.StatusForbidden || r.ErrorName() != "ScopeMissingError" || r.JSON()["message"] != want {
		t.Fatalf("want 403 ScopeMissingError %q, got %s", want, r)
	}
}
