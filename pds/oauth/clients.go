package oauth

import (
	"context"
	"net/url"
	"time"
)

// appClient is what the provider needs of a resolved client; clientlib.go fills it from package client. Keeping
// the provider on this narrow shape confines the client package's API to one file.
type appClient struct {
	ID         string
	Name       string // client_name ("" when none)
	LogoURI    string // logo_uri, only when https
	ClientURI  string // client_uri
	Loopback   bool   // a development client on localhost: never verified
	AuthMethod string // token_endpoint_auth_method: "none" or "private_key_jwt"
	// RedirectURIs are the registered redirect URIs (the first is the default when a request names none).
	RedirectURIs []string

	// authenticate checks the request's client authentication and returns how it authenticated ("none", or
	// "private_key_jwt:<key thumbprint>"): requests and sessions store it, and later requests of the same grant
	// must authenticate the same way (for confidential clients: with the same key).
	authenticate    func(form url.Values, issuer string, jtiSeen func(jti string, exp time.Time) bool) (string, error)
	redirectAllowed func(uri string) bool
	scopeAllowed    func(scope string) bool
	allowsRefresh   bool
}

type clientSource interface {
	resolve(ctx context.Context, clientID string) (*appClient, error)
}

// confidential reports whether the client authenticates with a key (longer session lifetimes).
func (c *appClient) confidential() bool { return c.AuthMethod == "private_key_jwt" }

// authenticateClient checks the client's authentication in a PAR, token or revocation request and returns how
// it authenticated (see appClient.authenticate); jtis of client assertions are remembered in the store so none
// is accepted twice.
func (p *Provider) authenticateClient(ctx context.Context, c *appClient, form url.Values) (string, error) {
	auth, err := c.authenticate(form, p.cfg.Issuer, func(jti string, exp time.Time) bool {
		if max := p.now().Add(ClientAssertionMaxAge); exp.Before(max) {
			exp = max
		}
		fresh, err := p.store.UseOAuthOnce(ctx, "client_assertion", c.ID+" "+jti, exp)
		return err != nil || !fresh // on a store error, refuse: treat as seen
	})
	if err != nil {
		return "", oauthErr(400, CodeInvalidClient, "Client authentication failed: %v", err)
	}
	return auth, nil
}
