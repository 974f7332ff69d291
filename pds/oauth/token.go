package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/pds/accountstore"
)

// accessClaims are the claims of our access tokens: the reference's at+jwt payload (iss, aud = the PDS's DID, sub,
// iat, exp, jti = the token id, scope, client_id, cnf.jkt = the DPoP key they are bound to).
type accessClaims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Cnf      struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Sub          string `json:"sub"`
}

func (p *Provider) signAccessToken(sess *accountstore.OAuthSession, now time.Time) (string, error) {
	var c accessClaims
	c.Issuer = p.cfg.Issuer
	c.Subject = sess.DID.String()
	c.Audience = jwt.ClaimStrings{p.cfg.ServiceDID.String()}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(AccessTokenLifetime))
	c.ID = sess.TokenID
	c.Scope = sess.Scope
	c.ClientID = sess.ClientID
	c.Cnf.JKT = sess.DPoPJKT
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["typ"] = "at+jwt"
	return t.SignedString(p.tokenKey)
}

// parseAccessToken checks an access token's signature and claims (expiry unless ignoreExpiry).
func (p *Provider) parseAccessToken(tok string, ignoreExpiry bool) (*accessClaims, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(p.cfg.Issuer),
		jwt.WithAudience(p.cfg.ServiceDID.String()), jwt.WithExpirationRequired(), jwt.WithTimeFunc(p.now),
	}
	if ignoreExpiry {
		opts = append(opts, jwt.WithoutClaimsValidation())
	}
	var c accessClaims
	t, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return p.tokenKey, nil }, opts...)
	if err != nil {
		return nil, err
	}
	if typ, _ := t.Header["typ"].(string); typ != "at+jwt" {
		return nil, errors.New("not an access token")
	}
	if c.ID == "" || c.Subject == "" || c.Cnf.JKT == "" {
		return nil, errors.New("incomplete access token")
	}
	return &c, nil
}

func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("DPoP-Nonce", p.nonces.Current())
	resp, err := p.token(w, r)
	if err != nil {
		p.writeError(w, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) (*TokenResponse, error) {
	ctx := r.Context()
	if err := parseForm(w, r); err != nil {
		return nil, err
	}
	jkt, err := p.verifyDPoP(r, PathToken)
	if err != nil {
		return nil, err
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if clientID == "" {
		return nil, oauthErr(400, CodeInvalidRequest, "client_id is required")
	}
	c, err := p.clients.resolve(ctx, clientID)
	if err != nil {
		return nil, clientErr(err)
	}
	auth, err := p.authenticateClient(ctx, c, f)
	if err != nil {
		return nil, err
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		return p.exchangeCode(ctx, c, auth, jkt, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
	case "refresh_token":
		if !c.allowsRefresh {
			return nil, oauthErr(400, CodeUnauthorizedClient, "The client did not declare the refresh_token grant")
		}
		return p.refresh(ctx, c, auth, jkt, f.Get("refresh_token"))
	case "":
		return nil, oauthErr(400, CodeInvalidRequest, "grant_type is required")
	default:
		return nil, oauthErr(400, CodeUnsupportedGrantType, "Unsupported grant_type")
	}
}

// RFC 7636 4.1: 43 to 128 unreserved characters.
var codeVerifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

func (p *Provider) exchangeCode(ctx context.Context, c *appClient, auth, jkt, code, redirectURI, verifier string) (*TokenResponse, error) {
	if code == "" || verifier == "" {
		return nil, oauthErr(400, CodeInvalidRequest, "code and code_verifier are required")
	}
	// The code is consumed first, whatever follows: a code is never usable twice, even after a failed exchange.
	req, err := p.store.ConsumeOAuthCode(ctx, code)
	if err != nil { // unknown/expired (invalid_grant) or replayed (invalid_grant, session revoked): see asError
		return nil, err
	}
	var params requestParams
	if err := json.Unmarshal([]byte(req.Params), &params); err != nil {
		return nil, err
	}
	switch {
	case req.ClientID != c.ID:
		return nil, oauthErr(400, CodeInvalidGrant, "This code was issued to another client")
	case req.ClientAuth != auth:
		return nil, oauthErr(400, CodeInvalidGrant, "Client authentication differs from the authorization request")
	case redirectURI != params.RedirectURI:
		return nil, oauthErr(400, CodeInvalidGrant, "redirect_uri does not match the authorization request")
	case !codeVerifierRE.MatchString(verifier):
		return nil, oauthErr(400, CodeInvalidGrant, "Invalid code_verifier")
	case !pkceMatches(verifier, params.CodeChallenge):
		return nil, oauthErr(400, CodeInvalidGrant, "code_verifier does not match code_challenge")
	case jkt != req.DPoPJKT:
		return nil, oauthErr(400, CodeInvalidDPoPProof, "DPoP key differs from the one of the authorization request")
	}
	did, err := syntax.ParseDID(req.DID.String())
	if err != nil {
		return nil, err
	}
	if _, err := p.accounts.Account(ctx, did); err != nil {
		return nil, accountErr(err)
	}
	now := p.now()
	sessionLife, refreshLife := PublicSessionLifetime, PublicRefreshLifetime
	if c.confidential() {
		sessionLife, refreshLife = ConfidentialSessionLifetime, ConfidentialRefreshLifetime
	}
	sess := &accountstore.OAuthSession{
		ID: randomID("ses-", 16), DID: req.DID, ClientID: c.ID, ClientAuth: auth, Scope: params.Scope,
		DPoPJKT: jkt, TokenID: randomID("tok-", 16), CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(sessionLife), RefreshExpiresAt: now.Add(refreshLife),
	}
	refresh := randomID("ref-", 32)
	if err := p.store.CreateOAuthSession(ctx, sess, refresh, code); err != nil {
		return nil, err
	}
	return p.tokenResponse(sess, refresh, now)
}

func (p *Provider) refresh(ctx context.Context, c *appClient, auth, jkt, refreshToken string) (*TokenResponse, error) {
	if refreshToken == "" {
		return nil, oauthErr(400, CodeInvalidRequest, "refresh_token is required")
	}
	sess, err := p.store.OAuthSessionByRefresh(ctx, refreshToken)
	if err != nil { // unknown/expired or replayed: see asError
		return nil, err
	}
	switch {
	case sess.ClientID != c.ID:
		return nil, oauthErr(400, CodeInvalidGrant, "This refresh token was issued to another client")
	case sess.ClientAuth != auth:
		return nil, oauthErr(400, CodeInvalidGrant, "Client authentication differs from the one the session started with")
	case jkt != sess.DPoPJKT:
		// The session is bound to one DPoP key for its whole life (required for public clients; we hold
		// confidential clients to it too).
		return nil, oauthErr(400, CodeInvalidDPoPProof, "DPoP key differs from the one the session is bound to")
	}
	did, err := syntax.ParseDID(sess.DID.String())
	if err != nil {
		return nil, err
	}
	if _, err := p.accounts.Account(ctx, did); err != nil {
		return nil, accountErr(err)
	}
	now := p.now()
	refreshLife := PublicRefreshLifetime
	if c.confidential() {
		refreshLife = ConfidentialRefreshLifetime
	}
	refreshExp := now.Add(refreshLife)
	if refreshExp.After(sess.ExpiresAt) {
		refreshExp = sess.ExpiresAt
	}
	oldTokenID := sess.TokenID
	next := randomID("ref-", 32)
	sess.TokenID = randomID("tok-", 16)
	if err := p.store.RotateOAuthRefresh(ctx, sess.ID, refreshToken, next, sess.TokenID, refreshExp); err != nil {
		return nil, err
	}
	p.liveCache.drop(oldTokenID)
	return p.tokenResponse(sess, next, now)
}

func (p *Provider) tokenResponse(sess *accountstore.OAuthSession, refresh string, now time.Time) (*TokenResponse, error) {
	at, err := p.signAccessToken(sess, now)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: at, TokenType: "DPoP", ExpiresIn: int(AccessTokenLifetime.Seconds()),
		RefreshToken: refresh, Scope: sess.Scope, Sub: sess.DID.String()}, nil
}

func pkceMatches(verifier, challenge string) bool {
	h := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(h[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func accountErr(err error) error {
	if errors.Is(err, ErrAccountUnavailable) {
		return oauthErr(400, CodeInvalidGrant, "The account is not available")
	}
	return err
}

// handleRevoke: RFC 7009. Any well-formed request gets 200, whether or not the token was live; revoking either
// the refresh token or the current access token ends the whole session.
func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("DPoP-Nonce", p.nonces.Current())
	if err := parseForm(w, r); err != nil {
		p.writeError(w, err)
		return
	}
	ctx := r.Context()
	f := r.PostForm
	tok := f.Get("token")
	if tok == "" {
		p.writeError(w, oauthErr(400, CodeInvalidRequest, "token is required"))
		return
	}
	if clientID := f.Get("client_id"); clientID != "" {
		c, err := p.clients.resolve(ctx, clientID)
		if err != nil {
			p.writeError(w, clientErr(err))
			return
		}
		if _, err := p.authenticateClient(ctx, c, f); err != nil {
			p.writeError(w, err)
			return
		}
	}
	if strings.HasPrefix(tok, "ref-") {
		tokenID, err := p.store.DeleteOAuthSessionByRefresh(ctx, tok)
		if err != nil && !errors.Is(err, accountstore.ErrNotFound) {
			p.writeError(w, err)
			return
		}
		p.liveCache.drop(tokenID)
	} else if c, err := p.parseAccessToken(tok, true); err == nil {
		if err := p.store.DeleteOAuthSessionByTokenID(ctx, c.ID); err != nil && !errors.Is(err, accountstore.ErrNotFound) {
			p.writeError(w, err)
			return
		}
		p.liveCache.drop(c.ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
