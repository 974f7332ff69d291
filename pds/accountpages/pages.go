package accountpages

import (
	"context"
	"crypto/hmac"
	"embed"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/pds/oauth/scope"
)

// Kit is what the pages share with the OAuth pages (implemented by *oauth.Provider).
type Kit interface {
	SetPageHeaders(w http.ResponseWriter)
	ServiceName() string
	Links() []oauth.PageLink
	Device(w http.ResponseWriter, r *http.Request, create bool) string
	CSRFToken(device, purpose string) string
	SameOrigin(r *http.Request) bool
	SignIn(ctx context.Context, r *http.Request, device, identifier, password string) (oauth.Account, error)
	SignInWithCode(ctx context.Context, r *http.Request, device, code string) (oauth.Account, error)
	SignInPending(device string) (syntax.DID, bool)
	DeviceDIDs(ctx context.Context, device string) []syntax.DID
	SignOutDevice(ctx context.Context, device string, did syntax.DID) error
	Sessions(ctx context.Context, did syntax.DID) ([]oauth.Session, error)
	RevokeSession(ctx context.Context, did syntax.DID, sessionID string) error
	RevokeAccount(ctx context.Context, did syntax.DID) error
	App(ctx context.Context, clientID string) oauth.AppInfo
	DescribeScope(ctx context.Context, s string) []scope.Description
	Allow(r *http.Request, kind string, n int, window time.Duration) bool
	AllowAccount(did syntax.DID, kind string, n int, window time.Duration) bool
}

// Credentials are the account's createSession sessions and app passwords (implemented by *auth.Verifier).
type Credentials interface {
	LegacySessions(ctx context.Context, did syntax.DID) ([]accountstore.LegacySession, error)
	RevokeLegacySession(ctx context.Context, did syntax.DID, id string) error
	RevokeLegacySessions(ctx context.Context, did syntax.DID) error
	AppPasswords(ctx context.Context, did syntax.DID) ([]accountstore.AppPassword, error)
	CreateAppPassword(ctx context.Context, did syntax.DID, name string, privileged bool) (string, time.Time, error)
	RevokeAppPassword(ctx context.Context, did syntax.DID, name string) error
}

// Accounts are the account's settings (implemented by *accounts.Service). Errors that are *xrpc.Error carry a
// message fit to show.
type Accounts interface {
	ByDID(ctx context.Context, did syntax.DID) (*accountstore.Account, error)
	ChangePassword(ctx context.Context, did syntax.DID, current, next string) error
	RequestPasswordReset(ctx context.Context, email string) error
	ResetPassword(ctx context.Context, token, password string) (syntax.DID, error)
	RequestEmailConfirmation(ctx context.Context, did syntax.DID) error
	ConfirmEmail(ctx context.Context, did syntax.DID, token string) error
	RequestEmailUpdate(ctx context.Context, did syntax.DID) (tokenRequired bool, err error)
	ChangeEmail(ctx context.Context, did syntax.DID, email, token string) error
	ServiceHandleDomains() []string
	CheckHandle(ctx context.Context, did syntax.DID, handle string) (string, error)
	SetHandle(ctx context.Context, did syntax.DID, handle string) error
	SetTwoFactor(ctx context.Context, did syntax.DID, on bool) error
	WriteRepoCAR(ctx context.Context, did syntax.DID, w io.Writer) error
	BlobCIDs(ctx context.Context, did syntax.DID) ([]string, error)
	SetActive(ctx context.Context, did syntax.DID, active bool) error
	RequestDeletion(ctx context.Context, did syntax.DID) error
	DeleteWithToken(ctx context.Context, did syntax.DID, password, token string) error
}

// Deps are the pages' collaborators.
type Deps struct {
	Kit         Kit
	Credentials Credentials
	Accounts    Accounts
	Logger      *slog.Logger
}

// Pages serves /account. Create it with New.
type Pages struct {
	kit      Kit
	creds    Credentials
	accounts Accounts
	log      *slog.Logger
}

// New builds the pages.
func New(d Deps) (*Pages, error) {
	if d.Kit == nil || d.Credentials == nil || d.Accounts == nil {
		return nil, errors.New("accountpages: Kit, Credentials and Accounts are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Pages{kit: d.Kit, creds: d.Credentials, accounts: d.Accounts, log: d.Logger.With("component", "accountpages")}, nil
}

// Paths of the pages.
const (
	PathHome         = "/account"
	PathSignIn       = "/account/sign-in"
	PathSignOut      = "/account/sign-out"
	PathSessions     = "/account/sessions"
	PathRevoke       = "/account/sessions/revoke"
	PathRevokeAll    = "/account/sessions/revoke-all"
	PathAppPasswords = "/account/app-passwords"
	PathAppPwRevoke  = "/account/app-passwords/revoke"
	PathPassword     = "/account/password"
	PathReset        = "/account/reset"
	PathResetRequest = "/account/reset/request"
	PathEmail        = "/account/email"
	PathHandle       = "/account/handle"
	PathLeave        = "/account/leave"
	PathExportRepo   = "/account/export/repo.car"
	PathExportBlobs  = "/account/export/blobs.txt"
)

// Route is one HTTP route of the pages.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Routes lists the pages' routes for the server's route table.
func (p *Pages) Routes() []Route {
	routes := []Route{
		{http.MethodGet, PathHome, p.handleHome},
		{http.MethodGet, PathSignIn, p.handleSignInPage},
		{http.MethodPost, PathSignIn, p.handleSignIn},
		{http.MethodGet, PathReset, p.handleResetPage},
		{http.MethodPost, PathResetRequest, p.handleResetRequest},
		{http.MethodPost, PathReset, p.handleReset},
		{http.MethodGet, PathExportRepo, p.handleExportRepo},
		{http.MethodGet, PathExportBlobs, p.handleExportBlobs},
	}
	// The pages of a signed-in account (GET) and the forms they post (POST; some post to a path of their own).
	type fill = func(ctx context.Context, s *session, v *view) (string, error)
	type act = func(w http.ResponseWriter, r *http.Request, s *session)
	for _, pg := range []struct {
		path string
		show fill
		post act
	}{
		{PathSessions, p.sessionsPage, nil},
		{PathAppPasswords, p.appPasswordsPage, p.createAppPassword},
		{PathPassword, p.passwordPage, p.changePassword},
		{PathEmail, p.emailPage, p.emailAction},
		{PathHandle, p.handlePage, p.handleAction},
		{PathLeave, p.leavePage, p.leaveAction},
	} {
		routes = append(routes, Route{http.MethodGet, pg.path, p.page(pg.show)})
		if pg.post != nil {
			routes = append(routes, Route{http.MethodPost, pg.path, p.action(pg.post)})
		}
	}
	for _, f := range []struct {
		path string
		post act
	}{
		{PathSignOut, p.signOut}, {PathRevoke, p.revoke}, {PathRevokeAll, p.revokeAll}, {PathAppPwRevoke, p.revokeAppPassword},
	} {
		routes = append(routes, Route{http.MethodPost, f.path, p.action(f.post)})
	}
	return routes
}

// Register adds the routes to an echo router.
func (p *Pages) Register(e *echo.Echo) {
	for _, r := range p.Routes() {
		e.Add(r.Method, r.Path, echo.WrapHandler(r.Handler))
	}
}

//go:embed templates/*.html
var templateFiles embed.FS

var templates = template.Must(oauth.PageTemplates().Funcs(template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
}).ParseFS(templateFiles, "templates/*.html"))

// view is what every template gets (the layout reads Title, Service, CSS and Links).
type view struct {
	Title, Service, Error, Notice string
	CSS                           template.CSS
	Links                         []oauth.PageLink
	Nav                           string // the current section
	CSRF                          string
	Account                       oauth.Account
	Accounts                      []oauth.Account
	Identifier                    string

	OAuthSessions  []oauthSession
	LegacySessions []legacySession
	AppPasswords   []accountstore.AppPassword
	NewAppPassword *newAppPassword

	Email          string
	EmailConfirmed bool
	Step           string // which form of a multi-step page to show

	Domains   []string // service handle domains
	NewHandle string   // the handle being set up or checked
	Checked   bool     // NewHandle passed the live check

	CodeStep    bool // the sign-in asks for the mailed code
	TwoFactor   bool // the account has two-factor sign-in by email
	Deactivated bool // the account is deactivated
}

type oauthSession struct {
	ID          string
	App         oauth.AppInfo
	Permissions []scope.Description
	Created     time.Time
	LastUsed    time.Time
}

type legacySession struct {
	ID          string
	AppPassword string
	Expires     time.Time
}

type newAppPassword struct {
	Name, Password string
	Privileged     bool
}

func (p *Pages) view(title string) *view {
	return &view{Title: title, Service: p.kit.ServiceName(), CSS: oauth.PageCSS(), Links: p.kit.Links()}
}

func (p *Pages) render(w http.ResponseWriter, status int, name string, v *view) {
	p.kit.SetPageHeaders(w)
	w.WriteHeader(status)
	if err := templates.ExecuteTemplate(w, name, v); err != nil {
		p.log.Error("accountpages: render", "page", name, "err", err)
	}
}

func (p *Pages) renderError(w http.ResponseWriter, status int, msg string) {
	v := p.view("Error")
	v.Error = msg
	p.render(w, status, "account-error", v)
}

// session is a request from a browser with an account signed in on it.
type session struct {
	device      string
	account     oauth.Account
	accounts    []oauth.Account
	deactivated bool
}

func (s *session) did() syntax.DID { return s.account.DID }

// current finds the account a page is about: the one named by ?account= (a DID) when it is signed in on this
// browser, else the first one signed in. ok is false when none is.
func (p *Pages) current(w http.ResponseWriter, r *http.Request, name string) (*session, bool) {
	device := p.kit.Device(w, r, false)
	accts, deactivated := p.deviceAccounts(r.Context(), device)
	if len(accts) == 0 {
		return nil, false
	}
	sort.Slice(accts, func(i, j int) bool { return accts[i].Handle < accts[j].Handle })
	s := &session{device: device, accounts: accts, account: accts[0]}
	if name != "" {
		found := false
		for _, a := range accts {
			if a.DID.String() == name {
				s.account, found = a, true
			}
		}
		if !found {
			return nil, false
		}
	}
	s.deactivated = deactivated[s.account.DID]
	return s, true
}

// deviceAccounts are the accounts signed in on this browser that still exist and are not taken down
// (deactivated ones too: they sign in here to reactivate).
func (p *Pages) deviceAccounts(ctx context.Context, device string) ([]oauth.Account, map[syntax.DID]bool) {
	var out []oauth.Account
	deactivated := map[syntax.DID]bool{}
	for _, did := range p.kit.DeviceDIDs(ctx, device) {
		a, err := p.accounts.ByDID(ctx, did)
		if err != nil || a.TakedownRef != "" {
			continue
		}
		out = append(out, oauth.Account{DID: did, Handle: a.Handle, Email: a.Email})
		deactivated[did] = a.DeactivatedAt != nil
	}
	return out, deactivated
}

func (p *Pages) accountView(s *session, title, nav string) *view {
	v := p.view(title)
	v.Nav = nav
	v.Account = s.account
	v.Accounts = s.accounts
	v.Deactivated = s.deactivated
	v.CSRF = p.kit.CSRFToken(s.device, "account\x00"+s.account.DID.String())
	return v
}

// page wraps a GET page of a signed-in account; without one it shows the sign-in form.
func (p *Pages) page(fill func(ctx context.Context, s *session, v *view) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := p.current(w, r, r.URL.Query().Get("account"))
		if !ok {
			p.signInForm(w, r, http.StatusOK, "", "")
			return
		}
		v := p.accountView(s, "", "")
		name, err := fill(r.Context(), s, v)
		if err != nil {
			p.log.Error("accountpages: page", "path", r.URL.Path, "err", err)
			p.renderError(w, http.StatusInternalServerError, "The server could not load this page. Try again later.")
			return
		}
		p.render(w, http.StatusOK, name, v)
	}
}

// action wraps a POST of a signed-in account: the form must come from this site, carry the CSRF token of this
// browser and account, and name an account signed in on this browser. The action renders its result itself.
func (p *Pages) action(do func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			p.renderError(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if !p.kit.SameOrigin(r) {
			p.renderError(w, http.StatusForbidden, "This form was sent from another site.")
			return
		}
		did := r.PostForm.Get("account")
		s, ok := p.current(w, r, did)
		if !ok || did == "" {
			p.renderError(w, http.StatusForbidden, "This account is not signed in on this browser. Sign in and try again.")
			return
		}
		want := p.kit.CSRFToken(s.device, "account\x00"+s.account.DID.String())
		if !hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(want)) {
			p.renderError(w, http.StatusForbidden, "This form has expired or was not sent by this page. Reload the page and try again.")
			return
		}
		do(w, r, s)
	}
}

func (p *Pages) handleHome(w http.ResponseWriter, r *http.Request) {
	s, ok := p.current(w, r, r.URL.Query().Get("account"))
	if !ok {
		p.signInForm(w, r, http.StatusOK, "", "")
		return
	}
	p.render(w, http.StatusOK, "account-home", p.accountView(s, "Your account", "home"))
}

func (p *Pages) signInForm(w http.ResponseWriter, r *http.Request, status int, identifier, msg string) {
	device := p.kit.Device(w, r, true)
	v := p.view("Sign in")
	v.CSRF = p.kit.CSRFToken(device, "sign-in")
	v.Identifier = identifier
	v.Error = msg
	v.Accounts, _ = p.deviceAccounts(r.Context(), device)
	p.render(w, status, "account-signin", v)
}

// codeForm asks for the sign-in code mailed to the account (two-factor sign-in by email).
func (p *Pages) codeForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	device := p.kit.Device(w, r, false)
	v := p.view("Sign in")
	v.CSRF = p.kit.CSRFToken(device, "sign-in")
	v.CodeStep = true
	v.Error = msg
	p.render(w, status, "account-signin", v)
}

func (p *Pages) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	p.signInForm(w, r, http.StatusOK, "", "")
}

func (p *Pages) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.renderError(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	device := p.kit.Device(w, r, false)
	if !p.kit.SameOrigin(r) || device == "" ||
		!hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(p.kit.CSRFToken(device, "sign-in"))) {
		p.renderError(w, http.StatusForbidden, "This form has expired or was not sent by this page. Reload the page and try again.")
		return
	}
	identifier := strings.TrimSpace(r.PostForm.Get("identifier"))
	password := r.PostForm.Get("password")
	var acct oauth.Account
	var err error
	if code, ok := r.PostForm["code"]; ok {
		acct, err = p.kit.SignInWithCode(r.Context(), r, device, code[0])
	} else {
		if identifier == "" || password == "" || len(identifier) > 256 || len(password) > 1024 {
			p.signInForm(w, r, http.StatusBadRequest, identifier, "Enter your handle, email or DID and your password.")
			return
		}
		acct, err = p.kit.SignIn(r.Context(), r, device, identifier, password)
	}
	switch {
	case errors.Is(err, oauth.ErrAccountDeactivated):
		// Signed in: the overview offers reactivation.
	case errors.Is(err, oauth.ErrCodeRequired):
		p.codeForm(w, r, http.StatusOK, "")
		return
	case errors.Is(err, oauth.ErrBadCode):
		if _, waiting := p.kit.SignInPending(device); waiting {
			p.codeForm(w, r, http.StatusUnauthorized, "That code is not right or has expired.")
		} else {
			p.signInForm(w, r, http.StatusUnauthorized, "", "That sign-in has expired. Sign in again.")
		}
		return
	case errors.Is(err, oauth.ErrRateLimited):
		p.signInForm(w, r, http.StatusTooManyRequests, identifier, "Too many sign-in attempts. Wait a few minutes and try again.")
		return
	case errors.Is(err, oauth.ErrBadCredentials):
		p.signInForm(w, r, http.StatusUnauthorized, identifier, "Invalid identifier or password")
		return
	case errors.Is(err, oauth.ErrAccountUnavailable):
		p.signInForm(w, r, http.StatusForbidden, identifier, "This account is not available (it is deactivated or suspended).")
		return
	case err != nil:
		p.log.Error("accountpages: sign-in", "err", err)
		p.signInForm(w, r, http.StatusInternalServerError, identifier, "The server could not sign you in. Try again later.")
		return
	}
	http.Redirect(w, r, PathHome+"?account="+acct.DID.String(), http.StatusSeeOther)
}

func (p *Pages) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := p.kit.SignOutDevice(r.Context(), s.device, s.did()); err != nil {
		p.log.Error("accountpages: sign-out", "err", err)
		p.renderError(w, http.StatusInternalServerError, "The server could not sign you out. Try again later.")
		return
	}
	http.Redirect(w, r, PathHome, http.StatusSeeOther)
}

// Q is the query that keeps a link on the page's account.
func (v *view) Q() string {
	if v.Account.DID == "" {
		return ""
	}
	return "?account=" + v.Account.DID.String()
}
