package oauth

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
)

// requestParams is a validated authorization request, stored with it as JSON.
type requestParams struct {
	RedirectURI   string `json:"redirect_uri"`
	Scope         string `json:"scope"`
	State         string `json:"state,omitempty"`
	CodeChallenge string `json:"code_challenge"`
	ResponseMode  string `json:"response_mode"`
	LoginHint     string `json:"login_hint,omitempty"`
	Prompt        string `json:"prompt,omitempty"`
}

// maxFormBytes bounds PAR, token and revocation bodies (a request is a few hundred bytes; assertions ~1 KB).
const maxFormBytes = 64 << 10

// RFC 7636 4.2: BASE64URL(SHA256(verifier)) is 43 characters.
var codeChallengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// parseForm reads an application/x-www-form-urlencoded body, refusing repeated parameters (RFC 6749 3.1).
func parseForm(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return oauthErr(400, CodeInvalidRequest, "Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return oauthErr(400, CodeInvalidRequest, "Malformed request body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return oauthErr(400, CodeInvalidRequest, "Parameter %q is repeated", k)
		}
	}
	return nil
}

// verifyDPoP checks the DPoP proof of a request to one of our endpoints (at the authorization server: no token).
func (p *Provider) verifyDPoP(r *http.Request, path string) (string, error) {
	proof, err := p.verifier.Verify(r.Header, r.Method, p.cfg.Issuer+path, "")
	if err != nil {
		return "", err
	}
	return proof.JKT, nil
}

// handlePAR: RFC 9126 pushed authorization request, with atproto's profile (PKCE S256, DPoP, scope atproto).
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("DPoP-Nonce", p.nonces.Current())
	uri, err := p.par(w, r)
	if err != nil {
		p.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(PARLifetime.Seconds())})
}

func (p *Provider) par(w http.ResponseWriter, r *http.Request) (string, error) {
	ctx := r.Context()
	if err := parseForm(w, r); err != nil {
		return "", err
	}
	jkt, err := p.verifyDPoP(r, PathPAR)
	if err != nil {
		return "", err
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if clientID == "" {
		return "", oauthErr(400, CodeInvalidRequest, "client_id is required")
	}
	c, err := p.clients.resolve(ctx, clientID)
	if err != nil {
		return "", clientErr(err)
	}
	auth, err := p.authenticateClient(ctx, c, f)
	if err != nil {
		return "", err
	}
	for _, k := range []string{"request", "claims", "id_token_hint", "nonce", "authorization_details"} {
		if f.Has(k) {
			code := CodeInvalidRequest
			if k == "request" {
				code = CodeRequestNotSupported
			}
			return "", oauthErr(400, code, "Unsupported %q parameter", k)
		}
	}
	if rt := f.Get("response_type"); rt != "code" {
		return "", oauthErr(400, CodeUnsupportedResponseType, "response_type must be \"code\"")
	}
	params := requestParams{State: f.Get("state"), RedirectURI: f.Get("redirect_uri")}
	if len(params.State) > 1024 {
		return "", oauthErr(400, CodeInvalidRequest, "state is too long")
	}
	if params.RedirectURI == "" {
		if len(c.RedirectURIs) != 1 {
			return "", oauthErr(400, CodeInvalidRequest, "redirect_uri is required")
		}
		params.RedirectURI = c.RedirectURIs[0]
	}
	if !c.redirectAllowed(params.RedirectURI) {
		return "", oauthErr(400, CodeInvalidRequest, "redirect_uri is not registered for this client")
	}

	// PKCE: required from every client, S256 only (atproto profile; a missing method means "plain", RFC 7636 4.3).
	params.CodeChallenge = f.Get("code_challenge")
	method := f.Get("code_challenge_method")
	switch {
	case params.CodeChallenge == "":
		return "", oauthErr(400, CodeInvalidRequest, "Use of PKCE is required")
	case method != "S256":
		return "", oauthErr(400, CodeInvalidRequest, "atproto requires use of \"S256\" code_challenge_method")
	case !codeChallengeRE.MatchString(params.CodeChallenge):
		return "", oauthErr(400, CodeInvalidRequest, "Invalid code_challenge")
	}

	// Scope: deduplicated, must contain atproto, and stay within what the client registered.
	var scopes []string
	for _, s := range strings.Fields(f.Get("scope")) {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if !slices.Contains(scopes, "atproto") {
		return "", oauthErr(400, CodeInvalidScope, "The \"atproto\" scope is required")
	}
	for _, s := range scopes {
		if s == "openid" {
			return "", oauthErr(400, CodeInvalidScope, "OpenID Connect is not compatible with atproto")
		}
		if !c.scopeAllowed(s) {
			return "", oauthErr(400, CodeInvalidScope, "Scope %q is not declared in the client metadata", s)
		}
	}
	params.Scope = strings.Join(scopes, " ")
	if _, err := p.checkScope(ctx, params.Scope); err != nil {
		return "", oauthErr(400, CodeInvalidScope, "%v", err)
	}

	switch params.ResponseMode = f.Get("response_mode"); params.ResponseMode {
	case "":
		params.ResponseMode = "query"
	case "query", "fragment":
	default:
		return "", oauthErr(400, CodeInvalidRequest, "Unsupported response_mode %q", params.ResponseMode)
	}
	if hint := strings.ToLower(f.Get("login_hint")); hint != "" {
		_, herr := syntax.ParseHandle(hint)
		_, derr := syntax.ParseDID(hint)
		if herr != nil && derr != nil {
			return "", oauthErr(400, CodeInvalidRequest, "Invalid login_hint %q", hint)
		}
		params.LoginHint = hint
	}
	switch params.Prompt = f.Get("prompt"); params.Prompt {
	case "", "login", "consent", "select_account":
	case "none":
		// Silent sign-on would need a consent the account gave earlier; like the reference for unauthenticated
		// clients, we always ask (and we keep no standing consents for any client).
		return "", oauthErr(400, CodeConsentRequired, "Silent sign-on (prompt=none) is not supported")
	default:
		return "", oauthErr(400, CodeInvalidRequest, "Unsupported prompt %q", params.Prompt)
	}

	// A code challenge is never accepted twice (CODE_CHALLENGE_REPLAY_TIMEFRAME).
	fresh, err := p.store.UseOAuthOnce(ctx, "code_challenge", params.CodeChallenge, p.now().Add(CodeChallengeReplayWindow))
	if err != nil {
		return "", err
	}
	if !fresh {
		return "", oauthErr(400, CodeInvalidRequest, "This code_challenge was already used")
	}

	body, err := json.Marshal(params)
	if err != nil {
		return "", err
	}
	id := randomID("req-", 16)
	if err := p.store.CreateOAuthRequest(ctx, &accountstore.OAuthRequest{
		ID: id, ClientID: c.ID, ClientAuth: auth, DPoPJKT: jkt, Params: string(body),
		ExpiresAt: p.now().Add(PARLifetime),
	}); err != nil {
		return "", err
	}
	return requestURIPrefix + id, nil
}

// clientErr turns a client resolution failure into invalid_client, keeping OAuth errors as they are.
func clientErr(err error) error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return oauthErr(400, CodeInvalidClient, "Invalid client: %v", err)
}
