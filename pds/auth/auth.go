package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/xrpc"
)

// Token scopes, as the reference PDS writes them.
const (
	ScopeAccess            = "com.atproto.access"
	ScopeAppPass           = "com.atproto.appPass"
	ScopeAppPassPrivileged = "com.atproto.appPassPrivileged"
	ScopeRefresh           = "com.atproto.refresh"
	ScopeTakendown         = "com.atproto.takendown"

	typAccess  = "at+jwt"
	typRefresh = "refresh+jwt"

	// AccessTTL is how long an access token is good for.
	AccessTTL    = 2 * time.Hour
	refreshTTL   = 90 * 24 * time.Hour
	refreshGrace = 2 * time.Hour
)

// Level says which scopes an endpoint accepts.
type Level int

const (
	Standard      Level = iota // access and app passwords
	Full                       // full access only (account settings)
	Takendown                  // standard, and taken-down accounts' limited scope
	FullTakendown              // full access, and taken-down accounts' limited scope (PLC signing, deactivation)
)

// Caller is the authenticated caller of a request.
type Caller struct {
	DID   syntax.DID
	Scope string // the token's scope claim (for OAuth: the granted scope string)
	// OAuth callers only: the client, the granted permissions (include: sets expanded), and the DPoP nonce
	// the response must carry.
	ClientID    string
	Permissions *scope.Set
	DPoPNonce   string
}

// Store is what auth needs of the account store: refresh tokens and app passwords.
type Store interface {
	CreateRefreshToken(ctx context.Context, rt *accountstore.RefreshToken) error
	RefreshTokenByID(ctx context.Context, id string) (*accountstore.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, old, next *accountstore.RefreshToken, graceUntil time.Time) (string, error)
	DeleteRefreshToken(ctx context.Context, id string) error
	AccountByDID(ctx context.Context, did syntax.DID) (*accountstore.Account, error)
	AppPasswordByName(ctx context.Context, did syntax.DID, name string) (*accountstore.AppPassword, error)
	AppPasswordByHash(ctx context.Context, did syntax.DID, hash string) (*accountstore.AppPassword, error)
	// The account pages' session and app password management (sessions.go).
	LegacySessions(ctx context.Context, did syntax.DID) ([]accountstore.LegacySession, error)
	DeleteRefreshTokenOf(ctx context.Context, did syntax.DID, id string) error
	DeleteRefreshTokensForAccount(ctx context.Context, did syntax.DID) error
	ListAppPasswords(ctx context.Context, did syntax.DID) ([]accountstore.AppPassword, error)
	CreateAppPassword(ctx context.Context, did syntax.DID, name, passwordHash string, privileged bool, createdAt time.Time) error
	RevokeAppPassword(ctx context.Context, did syntax.DID, name string) error
}

// TakedownChecker reports whether an account is taken down (an in-memory check, asked on every request).
type TakedownChecker interface {
	AccountTakendown(ctx context.Context, did syntax.DID) (bool, error)
}

// TokenVerifier verifies a credential of another kind than the session JWTs (OAuth DPoP-bound access tokens):
// the token, its proof of possession, and its permissions against level. Authenticate then applies the
// takedown check as for sessions.
type TokenVerifier interface {
	Verify(r *http.Request, token string, level Level) (*Caller, error)
}

// Config is what auth needs of the server's configuration.
type Config struct {
	JWTSecret     []byte
	ServiceDID    string
	AdminPassword string
	// Docs resolves DID documents to check incoming service-auth tokens; DocTimeout bounds one resolution.
	Docs       identity.Directory
	DocTimeout time.Duration
}

// Verifier issues and checks credentials.
type Verifier struct {
	cfg       Config
	store     Store
	takedowns TakedownChecker
	tokens    verifiedTokens
	// OAuth verifies "Authorization: DPoP" tokens (an *OAuthVerifier); nil refuses them as missing
	// authentication.
	OAuth TokenVerifier
}

// New returns a Verifier.
func New(cfg Config, store Store, takedowns TakedownChecker) *Verifier {
	return &Verifier{cfg: cfg, store: store, takedowns: takedowns}
}

type sessionClaims struct {
	Scope string `json:"scope"`
	// cnf and lxm never appear in a session token: an OAuth (DPoP-bound) token or a service-auth token sent as
	// Bearer carries them, and is refused (as the reference does).
	Cnf any `json:"cnf,omitempty"`
	Lxm any `json:"lxm,omitempty"`
	jwt.RegisteredClaims
}

// TokenPair is what createSession, createAccount and refreshSession hand out.
type TokenPair struct {
	Access  string
	Refresh string
}

func (v *Verifier) signToken(typ string, claims *sessionClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = typ
	return t.SignedString(v.cfg.JWTSecret)
}

func (v *Verifier) accessToken(did syntax.DID, scope string, now time.Time) (string, error) {
	return v.signToken(typAccess, &sessionClaims{
		Scope: scope,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   did.String(),
			Audience:  jwt.ClaimStrings{v.cfg.ServiceDID},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(AccessTTL)),
		},
	})
}

func (v *Verifier) refreshToken(did syntax.DID, jti string, exp, now time.Time) (string, error) {
	return v.signToken(typRefresh, &sessionClaims{
		Scope: ScopeRefresh,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   did.String(),
			Audience:  jwt.ClaimStrings{v.cfg.ServiceDID},
			ID:        jti,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
}

// CreateSession issues an access token and a stored refresh token (appPassword: the name of the app password
// the session was made with, or "").
func (v *Verifier) CreateSession(ctx context.Context, acct *accountstore.Account, appPassword string) (*TokenPair, error) {
	now := time.Now()
	scope, err := v.sessionScope(ctx, acct, appPassword)
	if err != nil {
		return nil, err
	}
	access, err := v.accessToken(acct.DID, scope, now)
	if err != nil {
		return nil, err
	}
	rt := &accountstore.RefreshToken{ID: randomID(), DID: acct.DID, ExpiresAt: now.Add(refreshTTL), AppPasswordName: appPassword}
	if err := v.store.CreateRefreshToken(ctx, rt); err != nil {
		return nil, err
	}
	refresh, err := v.refreshToken(acct.DID, rt.ID, rt.ExpiresAt, now)
	if err != nil {
		return nil, err
	}
	return &TokenPair{Access: access, Refresh: refresh}, nil
}

// sessionScope is the access scope of a session: the limited takendown scope for a taken-down account, the
// app-password scopes for a session made with an app password (appPassword is its name), else full access.
func (v *Verifier) sessionScope(ctx context.Context, acct *accountstore.Account, appPassword string) (string, error) {
	if acct.TakedownRef != "" {
		return ScopeTakendown, nil
	}
	if appPassword == "" {
		return ScopeAccess, nil
	}
	ap, err := v.store.AppPasswordByName(ctx, acct.DID, appPassword)
	if errors.Is(err, accountstore.ErrNotFound) {
		return "", xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token has been revoked")
	}
	if err != nil {
		return "", err
	}
	return AppPasswordScope(ap), nil
}

// RefreshSession rotates the refresh token a request carries and returns its account and the new pair. A
// retry within the grace period gets the same successor; the session keeps its scope.
func (v *Verifier) RefreshSession(r *http.Request) (*accountstore.Account, *TokenPair, error) {
	ctx := r.Context()
	claims, err := v.refreshClaims(r)
	if err != nil {
		return nil, nil, err
	}
	old, err := v.store.RefreshTokenByID(ctx, claims.ID)
	if errors.Is(err, accountstore.ErrNotFound) || (err == nil && old.DID.String() != claims.Subject) {
		return nil, nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token has been revoked")
	}
	if err != nil {
		return nil, nil, err
	}
	acct, err := v.store.AccountByDID(ctx, old.DID)
	if errors.Is(err, accountstore.ErrNotFound) {
		return nil, nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
	}
	if err != nil {
		return nil, nil, err
	}
	if acct.TakedownRef != "" {
		return nil, nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	now := time.Now()
	next := &accountstore.RefreshToken{ID: randomID(), DID: acct.DID, ExpiresAt: now.Add(refreshTTL), AppPasswordName: old.AppPasswordName}
	nextID, err := v.store.RotateRefreshToken(ctx, old, next, now.Add(refreshGrace))
	if err != nil {
		return nil, nil, err
	}
	if nextID != next.ID {
		// Already rotated (a retry within the grace period): hand out the same successor.
		prev, err := v.store.RefreshTokenByID(ctx, nextID)
		if err != nil {
			return nil, nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token has been revoked")
		}
		next = prev
	}
	// A refreshed session keeps its scope: an app-password session stays one (and ends with its password).
	scope, err := v.sessionScope(ctx, acct, next.AppPasswordName)
	if err != nil {
		return nil, nil, err
	}
	access, err := v.accessToken(acct.DID, scope, now)
	if err != nil {
		return nil, nil, err
	}
	refresh, err := v.refreshToken(acct.DID, next.ID, next.ExpiresAt, now)
	if err != nil {
		return nil, nil, err
	}
	return acct, &TokenPair{Access: access, Refresh: refresh}, nil
}

// DeleteSession revokes the refresh token a request carries.
func (v *Verifier) DeleteSession(r *http.Request) error {
	claims, err := v.refreshClaims(r)
	if err != nil {
		return err
	}
	return v.store.DeleteRefreshToken(r.Context(), claims.ID)
}

// refreshClaims authenticates a request carrying a refresh token.
func (v *Verifier) refreshClaims(r *http.Request) (*sessionClaims, error) {
	raw, ok := xrpc.BearerToken(r)
	if !ok {
		return nil, xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthMissing, "Authentication Required")
	}
	claims, err := v.parseToken(raw, typRefresh)
	if err != nil {
		return nil, err
	}
	if claims.Scope != ScopeRefresh || claims.ID == "" {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Bad token scope")
	}
	return claims, nil
}

// randomID returns 24 random bytes, base64url: refresh token ids.
func randomID() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken checks a session JWT's signature, expiry, audience and header type; the caller checks the scope.
func (v *Verifier) parseToken(raw, wantTyp string) (*sessionClaims, error) {
	claims := &sessionClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		return v.cfg.JWTSecret, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(v.cfg.ServiceDID), jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token has expired")
		}
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Token could not be verified")
	}
	if typ, _ := tok.Header["typ"].(string); typ != wantTyp {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Invalid token type")
	}
	if claims.Subject == "" || !strings.HasPrefix(claims.Subject, "did:") || claims.Cnf != nil || claims.Lxm != nil {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Malformed token")
	}
	return claims, nil
}

func scopeAllowed(scope string, level Level) bool {
	switch scope {
	case ScopeAccess:
		return true
	case ScopeAppPass, ScopeAppPassPrivileged:
		return level != Full && level != FullTakendown
	case ScopeTakendown:
		return level == Takendown || level == FullTakendown
	}
	return false
}

const callerKey = "pds.caller"

// RequireAuth is the middleware for endpoints that need an access token.
func (v *Verifier) RequireAuth(level Level) echo.MiddlewareFunc {
	return requireAuth{v, level}.middleware
}

// requireAuth is RequireAuth's middleware; its method value lets RequiresAuth recognise it.
type requireAuth struct {
	v     *Verifier
	level Level
}

func (r requireAuth) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		caller, err := r.v.Authenticate(c.Request(), r.level)
		if err != nil {
			return err
		}
		c.Set(callerKey, caller)
		SetResponseHeaders(c, caller)
		return next(c)
	}
}

var requireAuthPC = reflect.ValueOf(requireAuth{}.middleware).Pointer()

// RequiresAuth reports whether mw is a RequireAuth middleware: a route with one accepts OAuth access tokens, so it
// must state its OAuth rule (IsOAuthRule).
func RequiresAuth(mw echo.MiddlewareFunc) bool { return reflect.ValueOf(mw).Pointer() == requireAuthPC }

// OptionalAuth sets the caller when a valid access token is present, and fails on an invalid one.
func (v *Verifier) OptionalAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if hasCredentials(c.Request()) {
			caller, err := v.Authenticate(c.Request(), Standard)
			if err != nil {
				return err
			}
			c.Set(callerKey, caller)
			if caller.IsOAuth() {
				c.Response().Header().Set("DPoP-Nonce", caller.DPoPNonce)
			}
		}
		return next(c)
	}
}

// Authenticate turns a request's credentials into its caller, refusing scopes that level does not accept and,
// unless level accepts them, taken-down accounts. This is the one place a credential is checked.
func (v *Verifier) Authenticate(r *http.Request, level Level) (*Caller, error) {
	var caller *Caller
	var err error
	if tok, ok := xrpc.DPoPToken(r); ok && v.OAuth != nil {
		caller, err = v.OAuth.Verify(r, tok, level) // checks the token's permissions against level
	} else {
		caller, err = v.sessionCaller(r, level)
	}
	if err != nil {
		return nil, err
	}
	// Access tokens outlive a takedown by up to their 2 h lifetime: refuse them where the limited takendown
	// scope is not accepted (an in-memory check).
	if level != Takendown && level != FullTakendown {
		down, err := v.takedowns.AccountTakendown(r.Context(), caller.DID)
		if err != nil {
			return nil, err
		}
		if down {
			return nil, xrpc.NewError(http.StatusUnauthorized, xrpc.NameAccountTakedown, "Account has been taken down")
		}
	}
	return caller, nil
}

// SetResponseHeaders marks an authenticated response private and, for an OAuth caller, gives the client the
// DPoP nonce its next proof must carry (RFC 9449 8.2).
func SetResponseHeaders(c echo.Context, caller *Caller) {
	h := c.Response().Header()
	h.Set("Cache-Control", "private")
	h.Add("Vary", "Authorization")
	if caller.IsOAuth() && caller.DPoPNonce != "" {
		h.Set("DPoP-Nonce", caller.DPoPNonce)
	}
}

// hasCredentials reports whether the request carries an access token (Bearer or DPoP).
func hasCredentials(r *http.Request) bool {
	if _, ok := xrpc.BearerToken(r); ok {
		return true
	}
	_, ok := xrpc.DPoPToken(r)
	return ok
}

// sessionCaller checks a session access token (Authorization: Bearer).
func (v *Verifier) sessionCaller(r *http.Request, level Level) (*Caller, error) {
	raw, ok := xrpc.BearerToken(r)
	if !ok {
		return nil, xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthMissing, "Authentication Required")
	}
	did, scope, err := v.accessClaims(raw)
	if err != nil {
		return nil, err
	}
	if !scopeAllowed(scope, level) {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Bad token scope")
	}
	return &Caller{DID: syntax.DID(did), Scope: scope}, nil
}

// CallerOf returns the caller that RequireAuth or OptionalAuth set, or nil.
func CallerOf(c echo.Context) *Caller {
	v, _ := c.Get(callerKey).(*Caller)
	return v
}

// CallerDID is the DID of the caller that RequireAuth or OptionalAuth set, or "" for none.
func CallerDID(c echo.Context) syntax.DID {
	if v := CallerOf(c); v != nil {
		return v.DID
	}
	return ""
}

// RequireAdmin checks HTTP Basic admin:<PDS_ADMIN_PASSWORD> in constant time.
func (v *Verifier) RequireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user, pass, ok := c.Request().BasicAuth()
		if !ok {
			return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthMissing, "Authentication Required")
		}
		okUser := subtle.ConstantTimeCompare([]byte(user), []byte("admin")) == 1
		okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(v.cfg.AdminPassword)) == 1
		if !okUser || !okPass {
			return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Invalid admin credentials")
		}
		return next(c)
	}
}
