package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth/scope"
)

//go:embed templates/pages.html templates/style.css
var templateFiles embed.FS

var (
	pages    = template.Must(template.ParseFS(templateFiles, "templates/pages.html"))
	styleCSS = func() string {
		b, err := templateFiles.ReadFile("templates/style.css")
		if err != nil {
			panic(err)
		}
		return string(b)
	}()
	// styleHash allows exactly the inline stylesheet in the CSP: no other style, no script at all.
	styleHash = func() string {
		h := sha256.Sum256([]byte(styleCSS))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}()
)

// page is what every template gets.
type page struct {
	Title, Service, Error string
	CSS                   template.CSS
	Client                *appClient
	ClientName            string
	ClientHost            string
	RequestURI, CSRF      string
	SignInAction          string
	ConsentAction         string
	ChooserURL            string
	OtherAccountURL       string
	RedirectHost          string
	Identifier            string
	Account               Account
	Accounts              []chooserEntry
	Permissions           []scope.Description
	Links                 []PageLink
	CodeStep              bool // the sign-in asks for the mailed code
}

type chooserEntry struct {
	DID         syntax.DID
	Handle      string
	URL         string
	Deactivated bool
}

// flow is one authorization request as seen from the browser that opened it.
type flow struct {
	req    *accountstore.OAuthRequest
	params requestParams
	client *appClient
	device string // the browser's device secret
	uri    string // request_uri
}

// setPageHeaders: no caching, no framing, no script, only our stylesheet and the client's https logo, forms only
// to ourselves and (after approval, through our redirect) to the client's redirect URI.
func (p *Provider) setPageHeaders(w http.ResponseWriter, f *flow) {
	img := "'none'"
	formAction := "'self'"
	if f != nil {
		if f.client.LogoURI != "" {
			if u, err := url.Parse(f.client.LogoURI); err == nil && u.Scheme == "https" {
				img = "https://" + u.Host
			}
		}
		if src := cspSource(f.params.RedirectURI); src != "" {
			formAction += " " + src
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; img-src "+img+
		"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: that makes browsers send "Origin: null" on our own forms
	h.Set("Content-Type", "text/html; charset=utf-8")
}

// cspSource is the CSP source expression that matches a redirect URI (its origin, or its scheme for native apps).
func cspSource(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || strings.ContainsAny(uri, " ;,'\"") {
		return ""
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}

func (p *Provider) deviceCookieName() string {
	if p.devMode {
		return "oauth-device"
	}
	return "__Host-oauth-device" // Secure, Path=/, no Domain: only this exact origin can set or read it
}

// device returns the browser's device secret, setting the cookie on first visit.
func (p *Provider) device(w http.ResponseWriter, r *http.Request, create bool) string {
	if c, err := r.Cookie(p.deviceCookieName()); err == nil && len(c.Value) == 43 {
		if _, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			return c.Value
		}
	}
	if !create {
		return ""
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: p.deviceCookieName(), Value: secret, Path: "/", MaxAge: int(deviceLifetime.Seconds()),
		Secure: !p.devMode, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return secret
}

// csrfToken is tied to the browser's device cookie and to the request: a page's token is useless to another
// browser or another sign-in.
func (p *Provider) csrfToken(device, requestID string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte(device + "\x00" + requestID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// openFlow loads the request named by request_uri for this browser.
func (p *Provider) openFlow(ctx context.Context, device, requestURI, clientID string) (*flow, error) {
	id, ok := requestIDFromURI(requestURI)
	if !ok {
		return nil, errors.New("This sign-in link is incomplete: the app must start it with a pushed authorization request.")
	}
	req, err := p.store.OpenOAuthRequest(ctx, id, device, p.now().Add(InactivityTimeout))
	switch {
	case errors.Is(err, accountstore.ErrNotFound):
		return nil, errors.New("This sign-in request is unknown or has expired.")
	case errors.Is(err, accountstore.ErrOAuthRequestUsed):
		return nil, errors.New("This sign-in request was already used, or was opened in another browser.")
	case err != nil:
		p.log.Error("oauth: open request", "err", err)
		return nil, errors.New("The server could not load this sign-in request.")
	}
	if clientID != "" && clientID != req.ClientID {
		return nil, errors.New("This sign-in request was made by another app.")
	}
	f := &flow{req: req, device: device, uri: requestURI}
	if err := json.Unmarshal([]byte(req.Params), &f.params); err != nil {
		return nil, errors.New("The server could not load this sign-in request.")
	}
	f.client, err = p.clients.resolve(ctx, req.ClientID)
	if err != nil {
		return nil, errors.New("The app's description could not be loaded.")
	}
	return f, nil
}

func (p *Provider) basePage(f *flow, title string) *page {
	pg := &page{Title: title, Service: p.cfg.ServiceName, CSS: template.CSS(styleCSS), Links: p.cfg.Links}
	if f == nil {
		return pg
	}
	pg.Client = f.client
	pg.ClientHost = f.client.ID
	if u, err := url.Parse(f.client.ID); err == nil && u.Host != "" {
		pg.ClientHost = u.Host
	}
	pg.ClientName = f.client.Name
	if pg.ClientName == "" {
		pg.ClientName = pg.ClientHost
	}
	pg.RequestURI = f.uri
	pg.CSRF = p.csrfToken(f.device, f.req.ID)
	pg.SignInAction = PathSignIn
	pg.ConsentAction = PathConsent
	pg.RedirectHost = f.params.RedirectURI
	if u, err := url.Parse(f.params.RedirectURI); err == nil && u.Host != "" {
		pg.RedirectHost = u.Host
	}
	pg.ChooserURL = p.authorizeURL(f, nil)
	pg.OtherAccountURL = p.authorizeURL(f, url.Values{"login": {"1"}})
	return pg
}

func (p *Provider) authorizeURL(f *flow, extra url.Values) string {
	q := url.Values{"client_id": {f.req.ClientID}, "request_uri": {f.uri}}
	for k, v := range extra {
		q[k] = v
	}
	return PathAuthorize + "?" + q.Encode()
}

func (p *Provider) render(w http.ResponseWriter, f *flow, status int, name string, pg *page) {
	p.setPageHeaders(w, f)
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, pg); err != nil {
		p.log.Error("oauth: render", "page", name, "err", err)
	}
}

func (p *Provider) renderError(w http.ResponseWriter, status int, msg string) {
	pg := p.basePage(nil, "Error")
	pg.Error = msg
	p.render(w, nil, status, "error", pg)
}

// signedIn lists the accounts signed in on this browser within SignInLifetime that are not taken down or gone.
func (p *Provider) signedIn(ctx context.Context, f *flow) []Account {
	return p.DeviceAccounts(ctx, f.device)
}

func (p *Provider) chooserEntries(f *flow, accts []Account) []chooserEntry {
	var out []chooserEntry
	for _, a := range accts {
		out = append(out, chooserEntry{DID: a.DID, Handle: a.Handle, Deactivated: a.Deactivated,
			URL: p.authorizeURL(f, url.Values{"account": {a.DID.String()}})})
	}
	return out
}

func findAccount(accts []Account, key string) (Account, bool) {
	for _, a := range accts {
		if a.DID.String() == key || strings.EqualFold(a.Handle, key) {
			return a, true
		}
	}
	return Account{}, false
}

// handleAuthorize: the page the app sends the browser to. It shows the consent page when the browser has a
// signed-in account to use, the account chooser when it has several, and the sign-in form otherwise.
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	device := p.device(w, r, true)
	q := r.URL.Query()
	f, err := p.openFlow(ctx, device, q.Get("request_uri"), q.Get("client_id"))
	if err != nil {
		p.renderError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Browsers are recorded only once they open a real request, so stray visits leave no rows.
	if err := p.store.TouchOAuthDevice(ctx, device, truncate(r.UserAgent(), 256), p.clientIP(r)); err != nil {
		p.log.Error("oauth: device", "err", err)
	}
	var accts []Account
	if f.params.Prompt != "login" {
		accts = p.signedIn(ctx, f)
	}
	if q.Get("login") == "" {
		key := q.Get("account")
		if key == "" && f.params.Prompt != "select_account" {
			key = f.params.LoginHint
		}
		if a, ok := findAccount(accts, key); ok && key != "" {
			p.renderConsent(ctx, w, f, a, accts)
			return
		}
		if len(accts) > 0 {
			pg := p.basePage(f, "Choose an account")
			pg.Accounts = p.chooserEntries(f, accts)
			p.render(w, f, http.StatusOK, "chooser", pg)
			return
		}
	}
	pg := p.basePage(f, "Sign in")
	pg.Identifier = f.params.LoginHint
	pg.Accounts = p.chooserEntries(f, accts)
	p.render(w, f, http.StatusOK, "signin", pg)
}

func (p *Provider) renderConsent(ctx context.Context, w http.ResponseWriter, f *flow, a Account, accts []Account) {
	pg := p.basePage(f, "Allow access")
	pg.Account = a
	pg.Permissions = p.describeScope(ctx, f.params.Scope)
	pg.Accounts = p.chooserEntries(f, accts)
	p.render(w, f, http.StatusOK, "consent", pg)
}

// formFlow checks a page's POST (same origin, CSRF token of this browser and request) and reloads its flow.
func (p *Provider) formFlow(w http.ResponseWriter, r *http.Request) (*flow, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.renderError(w, http.StatusBadRequest, "The form could not be read.")
		return nil, false
	}
	if o := r.Header.Get("Origin"); o != "" && o != p.cfg.Issuer {
		p.renderError(w, http.StatusForbidden, "This form was sent from another site.")
		return nil, false
	}
	device := p.device(w, r, false)
	id, _ := requestIDFromURI(r.PostForm.Get("request_uri"))
	want := p.csrfToken(device, id)
	if device == "" || id == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(want)) {
		p.renderError(w, http.StatusForbidden, "This form has expired or was not sent by this page. Reload the page and try again.")
		return nil, false
	}
	f, err := p.openFlow(r.Context(), device, r.PostForm.Get("request_uri"), r.PostForm.Get("client_id"))
	if err != nil {
		p.renderError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return f, true
}

// Sign-in rate limits, as the reference's createSession: 30 per 5 minutes and 300 per day for one identifier;
// and per browser and per IP address, so one client cannot walk through many identifiers.
var signInLimits = []struct {
	kind   string
	n      int
	window time.Duration
}{
	{"id", 30, 5 * time.Minute}, {"id-day", 300, 24 * time.Hour},
	{"device", 30, 5 * time.Minute}, {"ip", 100, 5 * time.Minute},
}

func (p *Provider) handleSignIn(w http.ResponseWriter, r *http.Request) {
	f, ok := p.formFlow(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	identifier := strings.TrimSpace(r.PostForm.Get("identifier"))
	password := r.PostForm.Get("password")
	pg := p.basePage(f, "Sign in")
	pg.Identifier = identifier
	fail := func(status int, msg string) {
		pg.Error = msg
		pg.Accounts = p.chooserEntries(f, p.signedIn(ctx, f))
		p.render(w, f, status, "signin", pg)
	}
	var acct Account
	var err error
	if code, ok := r.PostForm["code"]; ok {
		acct, err = p.SignInWithCode(ctx, r, f.device, code[0])
	} else {
		if identifier == "" || password == "" || len(identifier) > 256 || len(password) > 1024 {
			fail(http.StatusBadRequest, "Enter your handle, email or DID and your password.")
			return
		}
		acct, err = p.SignIn(ctx, r, f.device, identifier, password)
	}
	switch {
	case errors.Is(err, ErrCodeRequired):
		pg.CodeStep = true
		p.render(w, f, http.StatusOK, "signin", pg)
		return
	case errors.Is(err, ErrBadCode):
		pg.CodeStep = true
		if _, waiting := p.SignInPending(f.device); !waiting {
			pg.CodeStep = false
		}
		fail(http.StatusUnauthorized, "That code is not right or has expired.")
		return
	case errors.Is(err, ErrRateLimited):
		fail(http.StatusTooManyRequests, "Too many sign-in attempts. Wait a few minutes and try again.")
		return
	case errors.Is(err, ErrBadCredentials):
		fail(http.StatusUnauthorized, "Invalid identifier or password")
		return
	case errors.Is(err, ErrAccountUnavailable): // taken down (a deactivated account signs in, as in the reference)
		fail(http.StatusForbidden, "This account is not available (it has been taken down).")
		return
	case err != nil:
		p.log.Error("oauth: sign-in", "err", err)
		fail(http.StatusInternalServerError, "The server could not sign you in. Try again later.")
		return
	}
	p.renderConsent(ctx, w, f, acct, p.signedIn(ctx, f))
}

func (p *Provider) handleConsent(w http.ResponseWriter, r *http.Request) {
	f, ok := p.formFlow(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	accts := p.signedIn(ctx, f)
	a, ok := findAccount(accts, r.PostForm.Get("account"))
	if !ok || !strings.HasPrefix(r.PostForm.Get("account"), "did:") {
		p.renderError(w, http.StatusForbidden, "This account is not signed in on this browser.")
		return
	}
	switch r.PostForm.Get("action") {
	case "deny":
		if err := p.store.DeleteOAuthRequest(ctx, f.req.ID); err != nil {
			p.log.Error("oauth: deny", "err", err)
		}
		p.redirectToClient(w, r, f, url.Values{"error": {CodeAccessDenied}, "error_description": {"The user denied access"}})
	case "approve":
		code := randomID("cod-", 32)
		err := p.store.ApproveOAuthRequest(ctx, f.req.ID, f.device, a.DID, code, p.now().Add(CodeLifetime))
		if err != nil {
			p.renderError(w, http.StatusBadRequest, "This sign-in request was already used or has expired.")
			return
		}
		p.redirectToClient(w, r, f, url.Values{"code": {code}})
	default:
		p.renderError(w, http.StatusBadRequest, "Choose Allow or Deny.")
	}
}

// redirectToClient sends the browser back to the app with the response parameters, plus state and iss (RFC 9207).
func (p *Provider) redirectToClient(w http.ResponseWriter, r *http.Request, f *flow, v url.Values) {
	if f.params.State != "" {
		v.Set("state", f.params.State)
	}
	v.Set("iss", p.cfg.Issuer)
	u, err := url.Parse(f.params.RedirectURI)
	if err != nil {
		p.renderError(w, http.StatusBadRequest, "The app's redirect address is invalid.")
		return
	}
	var target string
	if f.params.ResponseMode == "fragment" {
		u.Fragment, u.RawFragment = "", ""
		target = u.String() + "#" + v.Encode() // form-encoded once, as URLSearchParams(location.hash) expects
	} else {
		q := u.Query()
		for k := range v {
			q.Set(k, v.Get(k))
		}
		u.RawQuery = q.Encode()
		target = u.String()
	}
	p.setPageHeaders(w, f)
	w.Header().Del("Content-Type")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
