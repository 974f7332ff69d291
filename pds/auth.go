package pds

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
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

	accessTTL    = 2 * time.Hour
	refreshTTL   = 90 * 24 * time.Hour
	refreshGrace = 2 * time.Hour
)

type sessionClaims struct {
	Scope string `json:"scope"`
	jwt.RegisteredClaims
}

// tokenPair is what createSession, createAccount and refreshSession hand out.
type tokenPair struct {
	Access  string
	Refresh string
}

func (s *Server) signToken(typ string, claims *sessionClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = typ
	return t.SignedString(s.cfg.JWTSecret)
}

func (s *Server) accessToken(did, scope string, now time.Time) (string, error) {
	return s.signToken(typAccess, &sessionClaims{
		Scope: scope,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   did,
			Audience:  jwt.ClaimStrings{s.cfg.ServiceDID},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(accessTTL)),
		},
	})
}

func (s *Server) refreshToken(did, jti string, exp, now time.Time) (string, error) {
	return s.signToken(typRefresh, &sessionClaims{
		Scope: ScopeRefresh,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   did,
			Audience:  jwt.ClaimStrings{s.cfg.ServiceDID},
			ID:        jti,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
}

// createSessionTokens issues an access token and a stored refresh token.
func (s *Server) createSessionTokens(ctx context.Context, acct *accountstore.Account, appPassword string) (*tokenPair, error) {
	now := time.Now()
	scope, err := s.sessionScope(ctx, acct, appPassword)
	if err != nil {
		return nil, err
	}
	access, err := s.accessToken(acct.DID, scope, now)
	if err != nil {
		return nil, err
	}
	rt := &accountstore.RefreshToken{ID: randomID(), DID: acct.DID, ExpiresAt: now.Add(refreshTTL), AppPasswordName: appPassword}
	if err := s.accounts.CreateRefreshToken(ctx, rt); err != nil {
		return nil, err
	}
	refresh, err := s.refreshToken(acct.DID, rt.ID, rt.ExpiresAt, now)
	if err != nil {
		return nil, err
	}
	return &tokenPair{Access: access, Refresh: refresh}, nil
}

// sessionScope is the access scope of a session: the limited takendown scope for a taken-down account, the
// app-password scopes for a session made with an app password (appPassword is its name), else full access.
func (s *Server) sessionScope(ctx context.Context, acct *accountstore.Account, appPassword string) (string, error) {
	if acct.TakedownRef != "" {
		return ScopeTakendown, nil
	}
	if appPassword == "" {
		return ScopeAccess, nil
	}
	ap, err := s.accounts.AppPasswordByName(ctx, acct.DID, appPassword)
	if errors.Is(err, accountstore.ErrNotFound) {
		return "", xrpc.NewError(http.StatusBadRequest, "ExpiredToken", "Token has been revoked")
	}
	if err != nil {
		return "", err
	}
	return appPasswordScope(ap), nil
}

func randomID() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken checks a session JWT's signature, expiry, audience and header type; the caller checks the scope.
func (s *Server) parseToken(raw, wantTyp string) (*sessionClaims, error) {
	claims := &sessionClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		return s.cfg.JWTSecret, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(s.cfg.ServiceDID), jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, xrpc.NewError(http.StatusBadRequest, "ExpiredToken", "Token has expired")
		}
		return nil, xrpc.NewError(http.StatusBadRequest, "InvalidToken", "Token could not be verified")
	}
	if typ, _ := tok.Header["typ"].(string); typ != wantTyp {
		return nil, xrpc.NewError(http.StatusBadRequest, "InvalidToken", "Invalid token type")
	}
	if claims.Subject == "" || !strings.HasPrefix(claims.Subject, "did:") {
		return nil, xrpc.NewError(http.StatusBadRequest, "InvalidToken", "Malformed token")
	}
	return claims, nil
}

// authLevel says which scopes an endpoint accepts.
type authLevel int

const (
	authStandard      authLevel = iota // access and app passwords
	authFull                           // full access only (account settings)
	authTakendown                      // standard, and taken-down accounts' limited scope
	authFullTakendown                  // full access, and taken-down accounts' limited scope (PLC signing, deactivation)
)

func scopeAllowed(scope string, level authLevel) bool {
	switch scope {
	case ScopeAccess:
		return true
	case ScopeAppPass, ScopeAppPassPrivileged:
		return level != authFull && level != authFullTakendown
	case ScopeTakendown:
		return level == authTakendown || level == authFullTakendown
	}
	return false
}

// viewer is the authenticated caller of a request.
type viewer struct {
	DID   string
	Scope string
}

const viewerKey = "pds.viewer"

// requireAuth is the middleware for endpoints that need an access token.
func (s *Server) requireAuth(level authLevel) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			v, err := s.authenticate(c, level)
			if err != nil {
				return err
			}
			c.Set(viewerKey, v)
			c.Response().Header().Set("Cache-Control", "private")
			c.Response().Header().Add("Vary", "Authorization")
			return next(c)
		}
	}
}

// optionalAuth sets the viewer when a valid access token is present, and fails on an invalid one.
func (s *Server) optionalAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := xrpc.BearerToken(c.Request()); ok {
			v, err := s.authenticate(c, authStandard)
			if err != nil {
				return err
			}
			c.Set(viewerKey, v)
		}
		return next(c)
	}
}

func (s *Server) authenticate(c echo.Context, level authLevel) (*viewer, error) {
	raw, ok := xrpc.BearerToken(c.Request())
	if !ok {
		return nil, xrpc.NewError(http.StatusUnauthorized, "AuthMissing", "Authentication Required")
	}
	did, scope, err := s.accessClaims(raw)
	if err != nil {
		return nil, err
	}
	if !scopeAllowed(scope, level) {
		return nil, xrpc.NewError(http.StatusBadRequest, "InvalidToken", "Bad token scope")
	}
	// Access tokens outlive a takedown by up to their 2 h lifetime: refuse them where the limited takendown
	// scope is not accepted (an in-memory check, see takedown.go).
	if level != authTakendown && level != authFullTakendown {
		down, err := s.accountTakendown(c.Request().Context(), did)
		if err != nil {
			return nil, err
		}
		if down {
			return nil, xrpc.NewError(http.StatusUnauthorized, "AccountTakedown", "Account has been taken down")
		}
	}
	return &viewer{DID: did, Scope: scope}, nil
}

func viewerOf(c echo.Context) *viewer {
	v, _ := c.Get(viewerKey).(*viewer)
	return v
}

// requireAdmin checks HTTP Basic admin:<PDS_ADMIN_PASSWORD> in constant time.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user, pass, ok := c.Request().BasicAuth()
		if !ok {
			return xrpc.NewError(http.StatusUnauthorized, "AuthMissing", "Authentication Required")
		}
		okUser := subtle.ConstantTimeCompare([]byte(user), []byte("admin")) == 1
		okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.AdminPassword)) == 1
		if !okUser || !okPass {
			return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Invalid admin credentials")
		}
		return next(c)
	}
}
