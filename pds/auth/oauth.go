package auth

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/xrpc"
)

// OAuthVerifier is the TokenVerifier of OAuth access tokens: the provider checks the token, its DPoP proof and
// the session; this turns the grant into a Caller whose Permissions the Require* checks consult. Every OAuth
// grant passes every Level: what it may do is decided per method by those checks (as the reference's
// authorize callbacks decide it), and the takedown check of Authenticate applies as for sessions.
type OAuthVerifier struct {
	Provider *oauth.Provider
	// PublicURL is the server's public URL: the DPoP proof's htu is PublicURL + path.
	PublicURL string
	// Includes expands include: permission sets (cached by the resolver); nil leaves them granting nothing.
	Includes scope.IncludeResolver
	Log      *slog.Logger
}

// Verify implements TokenVerifier.
func (o *OAuthVerifier) Verify(r *http.Request, token string, level Level) (*Caller, error) {
	acc, err := o.Provider.VerifyAccess(r, o.PublicURL)
	if err != nil {
		var oe *oauth.Error
		if errors.As(err, &oe) {
			return nil, resourceError(oe)
		}
		if errors.Is(err, oauth.ErrNotDPoP) {
			return nil, xrpc.AuthMissing("Authentication Required")
		}
		return nil, err
	}
	set, err := scope.Parse(acc.Scope)
	if err != nil {
		// The provider only grants scopes it parsed: a token with another one is not ours to honour.
		return nil, xrpc.NewError(http.StatusUnauthorized, oauth.CodeInvalidToken, "Invalid access token scope").
			WithHeader("WWW-Authenticate", `DPoP error="invalid_token", error_description="Invalid access token scope"`)
	}
	if len(set.Includes()) > 0 && o.Includes != nil {
		// Fail closed: a set that cannot be resolved grants nothing (the rest of the scope still applies).
		if err := set.Expand(r.Context(), o.Includes); err != nil && o.Log != nil {
			o.Log.Warn("oauth: permission set not resolved; it grants nothing for this request", "client", acc.ClientID, "err", err)
		}
	}
	return &Caller{DID: acc.DID, Scope: acc.Scope, ClientID: acc.ClientID, Permissions: set,
		DPoPNonce: o.Provider.DPoPNonce()}, nil
}

// resourceError is the XRPC form of a resource-server OAuth error: status 401, the OAuth code as the error
// name, and the WWW-Authenticate challenge and DPoP-Nonce headers clients act on (RFC 9449 7.1, 8).
func resourceError(oe *oauth.Error) error {
	e := xrpc.NewError(oe.Status, oe.Code, "%s", oe.Description)
	if oe.WWWAuthenticate != "" {
		e.WithHeader("WWW-Authenticate", oe.WWWAuthenticate)
	}
	if oe.DPoPNonce != "" {
		e.WithHeader("DPoP-Nonce", oe.DPoPNonce)
	}
	return e
}
