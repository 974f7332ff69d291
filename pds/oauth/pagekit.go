package oauth

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/oauth/scope"
)

// What the server's other pages (pds/accountpages) share with the OAuth pages: one browser session (the device
// cookie and the accounts signed in on it), one sign-in with its rate limits, one layout, stylesheet and CSP, and
// CSRF tokens tied to the device cookie.

// ErrRateLimited: too many sign-in attempts for this identifier, browser or address.
var ErrRateLimited = errors.New("too many sign-in attempts")

// PageLink is a link the layout shows at the bottom of every page (privacy policy, terms, contact).
type PageLink struct {
	Text, URL string
}

// PageTemplates returns a copy of the pages' templates: "head" and "foot" (the layout, which reads .Title,
// .Service, .CSS and .Links) for other page packages to parse their own pages into.
func PageTemplates() *template.Template { return template.Must(pages.Clone()) }

// PageCSS is the shared stylesheet, allowed by the CSP that SetPageHeaders sends.
func PageCSS() template.CSS { return template.CSS(styleCSS) }

// SetPageHeaders sends the pages' security headers: strict CSP (only the shared stylesheet, no script, forms to
// this origin only), no framing, no caching.
func (p *Provider) SetPageHeaders(w http.ResponseWriter) { p.setPageHeaders(w, nil) }

// ServiceName is the server's name on its pages.
func (p *Provider) ServiceName() string { return p.cfg.ServiceName }

// Links are the layout's links (Config.Links).
func (p *Provider) Links() []PageLink { return p.cfg.Links }

// Device returns the browser's device secret ("" when it has none and create is false), setting the cookie
// (__Host-, Secure, HttpOnly, SameSite=Lax; not Secure on http://localhost) when create is true.
func (p *Provider) Device(w http.ResponseWriter, r *http.Request, create bool) string {
	return p.device(w, r, create)
}

// CSRFToken is a form token tied to this browser's device cookie and to purpose (a page or an action name).
func (p *Provider) CSRFToken(device, purpose string) string {
	return p.csrfToken(device, "page\x00"+purpose)
}

// SameOrigin reports whether a form POST came from this server's pages (a missing Origin header is allowed:
// the CSRF token still has to match).
func (p *Provider) SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == p.cfg.Issuer
}

// SignIn checks an account password (never an app password) under the sign-in rate limits and, when it is
// right, remembers the account on this browser. It returns ErrCodeRequired, ErrRateLimited, ErrBadCredentials,
// ErrAccountUnavailable, ErrAccountDeactivated (remembered all the same) or a server error.
func (p *Provider) SignIn(ctx context.Context, r *http.Request, device, identifier, password string) (Account, error) {
	idKey := strings.ToLower(strings.TrimPrefix(identifier, "@"))
	keys := map[string]string{"id": idKey, "id-day": idKey, "device": device, "ip": p.clientIP(r)}
	for _, l := range signInLimits {
		if !p.limits.allow(l.kind+"\x00"+keys[l.kind], l.n, l.window, p.now()) {
			return Account{}, ErrRateLimited
		}
	}
	acct, err := p.accounts.SignIn(ctx, strings.TrimPrefix(identifier, "@"), password)
	if errors.Is(err, ErrCodeRequired) {
		p.pending.put(device, acct.DID, p.now().Add(SignInCodeLifetime))
		return acct, ErrCodeRequired
	}
	return p.rememberSignIn(ctx, r, device, acct, err)
}

// rememberSignIn remembers the account on this browser once its credentials are all checked: a usable account, or
// a deactivated one (returned with ErrAccountDeactivated: the account pages let it in to reactivate, the OAuth
// pages refuse it, and DeviceAccounts leaves it out).
func (p *Provider) rememberSignIn(ctx context.Context, r *http.Request, device string, acct Account, err error) (Account, error) {
	if err != nil && !errors.Is(err, ErrAccountDeactivated) {
		return Account{}, err
	}
	if rerr := p.remember(ctx, r, device, acct); rerr != nil {
		return Account{}, rerr
	}
	return acct, err
}

// DeviceDIDs lists every account signed in on this browser within SignInLifetime, usable or not (the account
// pages show deactivated accounts so they can be reactivated).
func (p *Provider) DeviceDIDs(ctx context.Context, device string) []syntax.DID {
	if device == "" {
		return nil
	}
	dids, err := p.store.OAuthDeviceAccounts(ctx, device, p.now().Add(-SignInLifetime))
	if err != nil {
		p.log.Error("oauth: device accounts", "err", err)
		return nil
	}
	var out []syntax.DID
	for _, d := range dids {
		if did, err := syntax.ParseDID(d.String()); err == nil {
			out = append(out, did)
		}
	}
	return out
}

// SignInWithCode finishes a sign-in that SignIn answered with ErrCodeRequired on this browser: the mailed code
// is checked (rate limited per browser and account) and the account remembered. ErrBadCode when it is wrong,
// expired or no sign-in waits for it; otherwise it answers as SignIn (ErrAccountDeactivated included).
func (p *Provider) SignInWithCode(ctx context.Context, r *http.Request, device, code string) (Account, error) {
	did, ok := p.pending.get(device, p.now())
	if !ok {
		return Account{}, ErrBadCode
	}
	if !p.limits.allow("code\x00"+did.String(), 10, 5*time.Minute, p.now()) ||
		!p.limits.allow("device\x00"+device, 30, 5*time.Minute, p.now()) {
		return Account{}, ErrRateLimited
	}
	acct, err := p.accounts.SignInCode(ctx, did, strings.TrimSpace(code))
	if errors.Is(err, ErrBadCode) {
		return Account{}, ErrBadCode
	}
	p.pending.drop(device)
	return p.rememberSignIn(ctx, r, device, acct, err)
}

// SignInPending is the account waiting for its sign-in code on this browser, if any.
func (p *Provider) SignInPending(device string) (syntax.DID, bool) {
	return p.pending.get(device, p.now())
}

func (p *Provider) remember(ctx context.Context, r *http.Request, device string, acct Account) error {
	err := p.store.TouchOAuthDevice(ctx, device, truncate(r.UserAgent(), 256), p.clientIP(r))
	if err == nil {
		err = p.store.AddOAuthDeviceAccount(ctx, device, acct.DID)
	}
	return err
}

// SignInCodeLifetime is how long a browser may take to enter the mailed sign-in code (the mailed tokens' 15
// minutes).
const SignInCodeLifetime = 15 * time.Minute

// pendingSignIns are the browsers that gave the right password and wait for their sign-in code (in memory: a
// restart asks for the password again).
type pendingSignIns struct {
	mu sync.Mutex
	m  map[string]pendingSignIn // device secret -> sign-in
}

type pendingSignIn struct {
	did     syntax.DID
	expires time.Time
}

func (s *pendingSignIns) put(device string, did syntax.DID, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= limiterMaxKeys {
		s.m = map[string]pendingSignIn{}
	}
	s.m[device] = pendingSignIn{did: did, expires: expires}
}

func (s *pendingSignIns) get(device string, now time.Time) (syntax.DID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[device]
	if !ok || device == "" || now.After(e.expires) {
		return "", false
	}
	return e.did, true
}

func (s *pendingSignIns) drop(device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, device)
}

// DeviceAccounts lists the usable accounts signed in on this browser within SignInLifetime.
func (p *Provider) DeviceAccounts(ctx context.Context, device string) []Account {
	if device == "" {
		return nil
	}
	var out []Account
	for _, did := range p.DeviceDIDs(ctx, device) {
		if a, err := p.accounts.Account(ctx, did); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// SignOutDevice forgets did on this browser (the other accounts signed in on it stay).
func (p *Provider) SignOutDevice(ctx context.Context, device string, did syntax.DID) error {
	return p.store.RemoveOAuthDeviceAccount(ctx, device, did)
}

// AppInfo is how the pages name an app that holds a session.
type AppInfo struct {
	Name string // client_name, or the client's host
	URI  string // client_uri, or the client_id
}

// App describes a client for the account pages (from its metadata; the client_id's host when it cannot be
// fetched now).
func (p *Provider) App(ctx context.Context, clientID string) AppInfo {
	info := AppInfo{Name: clientID, URI: clientID}
	if u, err := url.Parse(clientID); err == nil && u.Host != "" {
		info.Name = u.Host
	}
	c, err := p.clients.resolve(ctx, clientID)
	if err != nil {
		return info
	}
	if c.Name != "" {
		info.Name = c.Name
	}
	if c.ClientURI != "" {
		info.URI = c.ClientURI
	}
	return info
}

// DescribeScope is a granted scope in plain words (the consent page's list).
func (p *Provider) DescribeScope(ctx context.Context, s string) []scope.Description {
	return p.describeScope(ctx, s)
}

// Allow counts one attempt of kind from the request's address and reports whether it is within n per window
// (the pages' limits on mailing codes and trying them).
func (p *Provider) Allow(r *http.Request, kind string, n int, window time.Duration) bool {
	return p.limits.allow("page\x00"+kind+"\x00"+p.clientIP(r), n, window, p.now())
}

// AllowAccount is Allow keyed by account instead of address.
func (p *Provider) AllowAccount(did syntax.DID, kind string, n int, window time.Duration) bool {
	return p.limits.allow("account\x00"+kind+"\x00"+did.String(), n, window, p.now())
}
