package oauth_test

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/scrypt"

	"github.com/pdsgo/pds/internal/testoauthapp"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
)

// testAccounts implements oauth.Accounts on the real account store, as the server does: account password only
// (app passwords live in another table and never match here), inactive accounts unavailable.
type testAccounts struct{ store *accountstore.Store }

func hashPassword(pw string) string {
	salt := "0123456789abcdef0123456789abcdef"
	key, _ := scrypt.Key([]byte(pw), []byte(salt), 1024, 8, 1, 64) // cheap parameters: test accounts only
	return salt + ":" + hex.EncodeToString(key)
}

func checkPassword(pw, stored string) bool {
	salt, h, _ := strings.Cut(stored, ":")
	want, _ := hex.DecodeString(h)
	got, _ := scrypt.Key([]byte(pw), []byte(salt), 1024, 8, 1, 64)
	return len(want) > 0 && subtle.ConstantTimeCompare(got, want) == 1
}

func (a *testAccounts) SignIn(ctx context.Context, identifier, password string) (oauth.Account, error) {
	var acct *accountstore.Account
	var err error
	switch {
	case strings.HasPrefix(identifier, "did:"):
		acct, err = a.store.AccountByDID(ctx, syntax.DID(identifier))
	case strings.Contains(identifier, "@"):
		acct, err = a.store.AccountByEmail(ctx, identifier)
	default:
		acct, err = a.store.AccountByHandle(ctx, strings.ToLower(identifier))
	}
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if err != nil {
		return oauth.Account{}, err
	}
	if !checkPassword(password, acct.PasswordHash) {
		return oauth.Account{}, oauth.ErrBadCredentials
	}
	if !acct.Active() {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	return oauth.Account{DID: acct.DID, Handle: acct.Handle, Email: acct.Email}, nil
}

func (a *testAccounts) Account(ctx context.Context, did syntax.DID) (oauth.Account, error) {
	acct, err := a.store.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	if err != nil {
		return oauth.Account{}, err
	}
	if !acct.Active() {
		return oauth.Account{}, oauth.ErrAccountUnavailable
	}
	return oauth.Account{DID: acct.DID, Handle: acct.Handle, Email: acct.Email}, nil
}

// SignInCode: the test accounts have no two-factor sign-in (the server's is tested in pds/accountpages).
func (a *testAccounts) SignInCode(ctx context.Context, did syntax.DID, code string) (oauth.Account, error) {
	return oauth.Account{}, oauth.ErrBadCode
}

const (
	aliceDID      = "did:plc:alice2222222222222222"
	aliceHandle   = "alice.test"
	alicePassword = "correct horse battery staple"
	bobDID        = "did:plc:bob22222222222222222"
	serviceDID    = "did:web:localhost"
)

type env struct {
	t        *testing.T
	store    *accountstore.Store
	p        *oauth.Provider
	srv      *httptest.Server
	issuer   string
	callback *testoauthapp.Callback
}

// newEnv starts the provider behind a real loopback HTTP server, with issuer http://localhost:<port> (dev mode),
// and a resource route (/xrpc/com.example.whoami) that authenticates with VerifyAccess.
func newEnv(t *testing.T, opts ...func(*oauth.Config)) *env {
	t.Helper()
	ctx := context.Background()
	store, err := accountstore.Open(ctx, filepath.Join(t.TempDir(), "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, a := range []struct{ did, handle string }{{aliceDID, aliceHandle}, {bobDID, "bob.test"}} {
		if err := store.CreateAccount(ctx, &accountstore.Account{DID: syntax.DID(a.did), Handle: a.handle, Email: a.handle + "@example.com",
			PasswordHash: hashPassword(alicePassword), SigningKey: []byte{1}, CreatedAt: time.Now()}, ""); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	cfg := oauth.Config{
		Issuer: issuer, ServiceDID: serviceDID, Secret: []byte("0123456789abcdef0123456789abcdef"),
		ClientHTTP: &http.Client{Timeout: 5 * time.Second}, ServiceName: "Test PDS",
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := oauth.New(cfg, oauth.Deps{Store: store, Accounts: &testAccounts{store: store}})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	p.Register(e)
	e.GET("/xrpc/com.example.whoami", func(c echo.Context) error {
		acc, err := p.VerifyAccess(c.Request(), issuer)
		var oe *oauth.Error
		switch {
		case errors.As(err, &oe):
			oe.SetHeaders(c.Response().Header())
			return c.JSON(oe.Status, map[string]string{"error": oe.Code, "message": oe.Description})
		case err != nil:
			return c.JSON(401, map[string]string{"error": "AuthMissing", "message": err.Error()})
		}
		c.Response().Header().Set("DPoP-Nonce", p.DPoPNonce())
		return c.JSON(200, map[string]string{"did": acc.DID.String(), "scope": acc.Scope, "client_id": acc.ClientID, "session": acc.SessionID})
	})
	srv := httptest.NewUnstartedServer(e)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, store: store, p: p, srv: srv, issuer: issuer, callback: testoauthapp.NewCallback(t)}
}

func (e *env) metadata() *ioauth.AuthServerMetadata { return testoauthapp.Metadata(e.t, e.issuer) }

type app = testoauthapp.App

func (e *env) newApp(scopes ...string) *app {
	return testoauthapp.NewApp(e.t, e.issuer, e.callback.URL(), scopes...)
}

// whoami calls the resource route with the session (indigo handles nonces and one refresh on invalid_token).
func (e *env) whoami(t *testing.T, sess *ioauth.ClientSession) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.issuer+"/xrpc/com.example.whoami", nil)
	resp, err := sess.DoWithAuth(&http.Client{Timeout: 10 * time.Second}, req, "com.example.whoami")
	if err != nil {
		return 0, map[string]string{"error": err.Error()}
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// formBrowser drives the pages over plain HTTP with a cookie jar (fast negative cases; the chromedp tests cover a
// real browser).
type formBrowser struct {
	t      *testing.T
	client *http.Client
	last   string   // body of the last page
	loc    *url.URL // the last redirect to the app
	rawLoc string
}

func newFormBrowser(t *testing.T) *formBrowser {
	jar, _ := cookiejar.New(nil)
	return &formBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

func (b *formBrowser) get(u string) *http.Response {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.last = string(body)
	return resp
}

// hidden returns the hidden fields of the last page's form (html/template escapes & as &amp; etc.).
func (b *formBrowser) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(b.last, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#61;", "=")
	return r.Replace(s)
}

func (b *formBrowser) post(u string, form url.Values) *http.Response {
	b.t.Helper()
	resp, err := b.client.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.last = string(body)
	return resp
}

// approve signs in (if the page asks) and approves, returning the redirect's query.
func (e *env) approveWithForms(t *testing.T, b *formBrowser, authURL, identifier, password string) url.Values {
	t.Helper()
	resp := b.get(authURL)
	if resp.StatusCode != 200 {
		t.Fatalf("authorize page: %d %s", resp.StatusCode, b.last)
	}
	if strings.Contains(b.last, "Choose an account") { // the chooser: pick the account
		if resp := b.get(authURL + "&account=" + url.QueryEscape(identifier)); resp.StatusCode != 200 {
			t.Fatalf("chooser: %d", resp.StatusCode)
		}
	}
	if strings.Contains(b.last, `name="password"`) {
		form := b.hidden()
		form.Set("identifier", identifier)
		form.Set("password", password)
		if resp := b.post(e.issuer+oauth.PathSignIn, form); resp.StatusCode != 200 {
			t.Fatalf("sign-in: %d %s", resp.StatusCode, b.last)
		}
	}
	form := b.hidden()
	form.Set("action", "approve")
	resp = b.post(e.issuer+oauth.PathConsent, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: %d %s", resp.StatusCode, b.last)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	b.loc = loc
	b.rawLoc = resp.Header.Get("Location")
	return loc.Query()
}

// oauthErrorOf reads an OAuth error body.
func oauthErrorOf(resp *http.Response) string {
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Error
}

// dpopPoster sends hand-built requests with DPoP proofs (indigo's NewAuthDPoP) to the authorization server.
type dpopPoster struct {
	key   atcrypto.PrivateKey
	nonce string
	mu    sync.Mutex
}

func newDPoPPoster(t *testing.T) *dpopPoster {
	k, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	return &dpopPoster{key: k}
}

// post sends form to u with a proof (retrying once on use_dpop_nonce, as clients do); withProof false sends none.
func (d *dpopPoster) post(t *testing.T, u string, form url.Values, withProof bool) *http.Response {
	t.Helper()
	for i := 0; ; i++ {
		req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withProof {
			proof, err := ioauth.NewAuthDPoP("POST", u, d.nonce, d.key)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			d.nonce = n
		}
		if i == 0 && withProof && resp.StatusCode == 400 && resp.Header.Get("DPoP-Nonce") != "" {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "use_dpop_nonce") {
				continue
			}
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		return resp
	}
}
