package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth/dpop"
	"github.com/pdsgo/pds/pds/oauth/scope"
)

// Lifetimes, as @atproto/oauth-provider (src/constants.ts) as installed with @atproto/pds 0.5.35
// (docs: /work/shared/docs/reference-pds.md "OAuth"). Newer reference versions shortened the public-client ones
// (1 week session, 2 days refresh); we keep the 0.5.35 values the reference PDS we match ships.
const (
	// PARLifetime: PAR_EXPIRES_IN, how long a pushed request_uri may wait to be opened.
	PARLifetime = 5 * time.Minute
	// InactivityTimeout: AUTHORIZATION_INACTIVITY_TIMEOUT, extended each time the pages are used.
	InactivityTimeout = 5 * time.Minute
	// CodeLifetime: the reference lets a code live for the inactivity timeout although its comment says "within
	// the next 60 seconds"; RFC 6749 4.1.2 asks for short codes, so we use the 60 s the comment states.
	CodeLifetime = time.Minute
	// AccessTokenLifetime: TOKEN_MAX_AGE.
	AccessTokenLifetime = 60 * time.Minute
	// Public clients (token_endpoint_auth_method none): session and refresh token 2 weeks.
	PublicSessionLifetime = 14 * 24 * time.Hour
	PublicRefreshLifetime = 14 * 24 * time.Hour
	// Confidential clients (private_key_jwt): session 2 years, each refresh token 3 months.
	ConfidentialSessionLifetime = 2 * 365 * 24 * time.Hour
	ConfidentialRefreshLifetime = 90 * 24 * time.Hour
	// SignInLifetime: AUTHENTICATION_MAX_AGE, how long a browser stays signed in for the account chooser.
	SignInLifetime = 7 * 24 * time.Hour
	// CodeChallengeReplayWindow: CODE_CHALLENGE_REPLAY_TIMEFRAME, a PKCE challenge is never accepted twice within it.
	CodeChallengeReplayWindow = 24 * time.Hour
	// ClientAssertionMaxAge: CLIENT_ASSERTION_MAX_AGE (the client package checks iat; we keep jtis this long).
	ClientAssertionMaxAge = time.Minute
	// NonceRotation: DPoP nonces rotate every minute and stay valid for DPOP_NONCE_MAX_AGE (3 min) in the dpop
	// package's window.
	NonceRotation = time.Minute
	// deviceLifetime: the browser cookie (the reference's device id cookie is long-lived too).
	deviceLifetime = 365 * 24 * time.Hour
)

var (
	// ErrBadCredentials: wrong identifier or password (also: an app password, which this page refuses).
	ErrBadCredentials = errors.New("invalid identifier or password")
	// ErrAccountUnavailable: the account is taken down, deactivated or deleted.
	ErrAccountUnavailable = errors.New("account unavailable")
	// ErrAccountDeactivated: the password is right and the account is deactivated by its owner (an
	// ErrAccountUnavailable for the OAuth pages; the account pages let it sign in to reactivate).
	ErrAccountDeactivated = fmt.Errorf("%w: deactivated", ErrAccountUnavailable)
	// ErrCodeRequired: the password is right, and the account also needs the sign-in code just mailed to it
	// (two-factor sign-in by email); SignIn returns the account with it.
	ErrCodeRequired = errors.New("sign-in code required")
	// ErrBadCode: the sign-in code is wrong or expired, or no sign-in is waiting for one on this browser.
	ErrBadCode = errors.New("wrong or expired sign-in code")
	// ErrNotDPoP: VerifyAccess was called on a request without an "Authorization: DPoP" header.
	ErrNotDPoP = errors.New("oauth: no DPoP authorization")
)

// Account is what the pages need to know of an account.
type Account struct {
	DID    syntax.DID
	Handle string
	Email  string
}

// Accounts is implemented by the server with its account store and password hashing.
type Accounts interface {
	// SignIn checks identifier (handle, email or DID) and the account password (never an app password). When
	// the account has two-factor sign-in by email it mails a code and returns the account with ErrCodeRequired.
	SignIn(ctx context.Context, identifier, password string) (Account, error)
	// SignInCode uses up the mailed sign-in code of did (ErrBadCode when it is wrong or expired) and then
	// answers as SignIn does after a right password: the account, with ErrAccountDeactivated when it is
	// deactivated, ErrAccountUnavailable when it is taken down or gone.
	SignInCode(ctx context.Context, did syntax.DID, code string) (Account, error)
	// Account returns a usable account (ErrAccountUnavailable when it is not).
	Account(ctx context.Context, did syntax.DID) (Account, error)
}

// Config is the provider's configuration; New checks it.
type Config struct {
	// Issuer is the server's public URL: "https://<host>" (no path, no default port), or "http://localhost:<port>"
	// in development.
	Issuer string
	// ServiceDID is the audience of access tokens (the PDS's DID).
	ServiceDID syntax.DID
	// Secret signs access tokens (HS256, like the reference PDS, which signs them with PDS_JWT_SECRET) and keys
	// the DPoP nonces and CSRF tokens (through derived keys).
	Secret []byte
	// ClientHTTP fetches client metadata and JWKS: internal/ssrf.NewClient(false, ...) in production.
	ClientHTTP *http.Client
	// IncludeResolver resolves include: permission sets (scope.NewLexiconResolver); nil leaves them unexpanded
	// (requests naming one then show it by name only).
	IncludeResolver scope.IncludeResolver
	// AllowHTTPClients accepts http:// client_id URLs (tests with a client on loopback only).
	AllowHTTPClients bool
	// ServiceName names this server on its pages ("" gives the issuer's host).
	ServiceName string
	// Links are shown at the bottom of every page (describeServer's privacy policy, terms of service, contact).
	Links []PageLink
	// ClientIP returns the address a request came from, for rate limits (nil: the TCP peer).
	ClientIP func(*http.Request) string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Deps are the provider's collaborators.
type Deps struct {
	Store    *accountstore.Store
	Accounts Accounts
}

// Provider is the authorization server. Create it with New.
type Provider struct {
	cfg       Config
	store     *accountstore.Store
	accounts  Accounts
	clients   clientSource
	nonces    *dpop.Nonces
	verifier  *dpop.Verifier
	tokenKey  []byte
	csrfKey   []byte
	devMode   bool
	host      string
	log       *slog.Logger
	limits    *limiter
	liveCache *liveCache
	pending   *pendingSignIns
}

// New checks cfg and builds the provider.
func New(cfg Config, deps Deps) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("oauth: issuer %q must be a bare origin", cfg.Issuer)
	}
	dev := false
	switch u.Scheme {
	case "https":
		if u.Port() == "443" {
			return nil, fmt.Errorf("oauth: issuer %q must not carry the default port", cfg.Issuer)
		}
	case "http":
		if u.Hostname() != "localhost" {
			return nil, fmt.Errorf("oauth: issuer %q: http is only for localhost (development)", cfg.Issuer)
		}
		dev = true
	default:
		return nil, fmt.Errorf("oauth: issuer %q must be https", cfg.Issuer)
	}
	if cfg.ServiceDID == "" || len(cfg.Secret) < 16 {
		return nil, errors.New("oauth: ServiceDID and a Secret of at least 16 bytes are required")
	}
	if deps.Store == nil || deps.Accounts == nil {
		return nil, errors.New("oauth: Store and Accounts are required")
	}
	if cfg.ClientHTTP == nil {
		return nil, errors.New("oauth: ClientHTTP is required (use the SSRF-guarded client)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = u.Hostname()
	}
	p := &Provider{
		cfg:       cfg,
		store:     deps.Store,
		accounts:  deps.Accounts,
		tokenKey:  cfg.Secret, // as the reference PDS: HS256 with PDS_JWT_SECRET
		csrfKey:   derive(cfg.Secret, "oauth csrf"),
		devMode:   dev,
		host:      u.Host,
		log:       cfg.Logger.With("component", "oauth"),
		limits:    newLimiter(),
		liveCache: newLiveCache(),
		pending:   &pendingSignIns{m: map[string]pendingSignIn{}},
	}
	p.nonces = dpop.NewNonces(derive(cfg.Secret, "dpop nonce"), NonceRotation)
	p.verifier = dpop.NewVerifier(p.nonces)
	if cfg.Now != nil {
		p.nonces.Now = cfg.Now
		p.verifier.Now = cfg.Now
	}
	p.clients = newClientResolver(cfg.ClientHTTP, cfg.AllowHTTPClients)
	return p, nil
}

func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func (p *Provider) now() time.Time {
	if p.cfg.Now != nil {
		return p.cfg.Now()
	}
	return time.Now()
}

// Issuer returns the authorization server's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// DPoPNonce returns the current server nonce; resource responses to DPoP requests should carry it in DPoP-Nonce.
func (p *Provider) DPoPNonce() string { return p.nonces.Current() }

func (p *Provider) clientIP(r *http.Request) string {
	if p.cfg.ClientIP != nil {
		return p.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// randomID returns prefix + hex of n random bytes (the reference's identifier prefixes: req-, cod-, ses-, ref-, tok-).
func randomID(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + hex.EncodeToString(b)
}

const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

func requestIDFromURI(uri string) (string, bool) {
	id, ok := strings.CutPrefix(uri, requestURIPrefix)
	if !ok || !strings.HasPrefix(id, "req-") || len(id) > 100 {
		return "", false
	}
	return id, true
}
