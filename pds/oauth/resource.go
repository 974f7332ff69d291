package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth/dpop"
)

// Access is a verified OAuth access to this PDS.
type Access struct {
	DID       syntax.DID
	Scope     string
	ClientID  string
	SessionID string
}

// resourceErr is a 401 with the WWW-Authenticate challenge RFC 9449 7.1 asks for.
func (p *Provider) resourceErr(code, desc string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Description: desc, err: err,
		WWWAuthenticate: fmt.Sprintf(`DPoP algs="%s", error="%s", error_description="%s"`,
			strings.Join(signingAlgs, " "), code, strings.ReplaceAll(desc, `"`, "'"))}
}

// VerifyAccess checks a resource request made with "Authorization: DPoP <token>": the DPoP proof (htm, htu =
// publicURL + path, ath, fresh nonce, unused jti), the token (signature, issuer, audience, expiry), that both use
// the same key (cnf.jkt), and that the session is still live. It returns ErrNotDPoP when the request has no DPoP
// authorization (the caller then tries its other schemes), and otherwise an *Error to answer with (status 401,
// WWW-Authenticate, and DPoP-Nonce when the client must retry with a fresh nonce).
func (p *Provider) VerifyAccess(r *http.Request, publicURL string) (*Access, error) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "DPoP") {
		return nil, ErrNotDPoP
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return nil, p.resourceErr(CodeInvalidToken, "Missing access token", nil)
	}
	proof, err := p.verifier.Verify(r.Header, r.Method, strings.TrimSuffix(publicURL, "/")+r.URL.Path, tok)
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		e := p.resourceErr(CodeUseDPoPNonce, "Resource server requires nonce in DPoP proof", err)
		e.DPoPNonce = p.nonces.Current()
		return nil, e
	case err != nil:
		return nil, p.resourceErr(CodeInvalidDPoPProof, dpopDescription(err), err)
	}
	claims, err := p.parseAccessToken(tok, false)
	if err != nil {
		desc := "Invalid access token"
		if errors.Is(err, jwtExpired) {
			desc = "Access token expired"
		}
		return nil, p.resourceErr(CodeInvalidToken, desc, err)
	}
	if claims.Cnf.JKT != proof.JKT {
		return nil, p.resourceErr(CodeInvalidDPoPProof, "DPoP key does not match the access token", nil)
	}
	did, err := syntax.ParseDID(claims.Subject)
	if err != nil {
		return nil, p.resourceErr(CodeInvalidToken, "Invalid access token", err)
	}
	now := p.now()
	entry, ok := p.liveCache.get(claims.ID, now)
	if !ok {
		sess, err := p.store.OAuthSessionByTokenID(r.Context(), claims.ID)
		if errors.Is(err, accountstore.ErrNotFound) {
			return nil, p.resourceErr(CodeInvalidToken, "Access token revoked", err)
		}
		if err != nil {
			return nil, p.asError(err)
		}
		entry = liveEntry{did: sess.DID.String(), sessionID: sess.ID, until: now.Add(liveCacheTTL)}
		p.liveCache.put(claims.ID, entry)
	}
	if entry.did != did.String() {
		return nil, p.resourceErr(CodeInvalidToken, "Invalid access token", nil)
	}
	return &Access{DID: did, Scope: claims.Scope, ClientID: claims.ClientID, SessionID: entry.sessionID}, nil
}

func dpopDescription(err error) string {
	switch {
	case errors.Is(err, dpop.ErrMissing):
		return "DPoP proof required"
	case errors.Is(err, dpop.ErrReplay):
		return "DPoP proof replayed"
	}
	return "Invalid DPoP proof"
}

// Session is an OAuth session as the account pages show it.
type Session struct {
	ID        string
	ClientID  string
	Scope     string
	CreatedAt time.Time
	UpdatedAt time.Time // last refresh
	ExpiresAt time.Time
}

// Sessions lists the live OAuth sessions of did.
func (p *Provider) Sessions(ctx context.Context, did syntax.DID) ([]Session, error) {
	list, err := p.store.OAuthSessions(ctx, did)
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(list))
	for _, s := range list {
		out = append(out, Session{ID: s.ID, ClientID: s.ClientID, Scope: s.Scope, CreatedAt: s.CreatedAt,
			UpdatedAt: s.UpdatedAt, ExpiresAt: s.ExpiresAt})
	}
	return out, nil
}

// ErrSessionNotFound: RevokeSession found no such session of that account.
var ErrSessionNotFound = errors.New("oauth: session not found")

// RevokeSession ends one session of did; its tokens stop working at once.
func (p *Provider) RevokeSession(ctx context.Context, did syntax.DID, sessionID string) error {
	tokenID, err := p.store.DeleteOAuthSession(ctx, sessionID, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return ErrSessionNotFound
	}
	if err != nil {
		return err
	}
	p.liveCache.drop(tokenID)
	return nil
}

// RevokeAccount ends every OAuth session of did and signs it out of every browser (password change,
// deactivation, takedown, deletion).
func (p *Provider) RevokeAccount(ctx context.Context, did syntax.DID) error {
	ids, err := p.store.DeleteOAuthSessionsForDID(ctx, did)
	p.liveCache.drop(ids...)
	p.liveCache.dropDID(did.String())
	return err
}

// Prune deletes expired OAuth state; the server calls it from its background loop.
func (p *Provider) Prune(ctx context.Context) error {
	return p.store.PruneOAuth(ctx, p.now().Add(-deviceLifetime), p.now().Add(-SignInLifetime))
}

var jwtExpired = jwt.ErrTokenExpired
