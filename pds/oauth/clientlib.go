package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/oauth/client"
)

// libResolver adapts package client to the provider's appClient.
type libResolver struct{ r *client.Resolver }

func newClientResolver(hc *http.Client, allowHTTP bool) clientSource {
	r := client.NewResolver(hc)
	r.AllowHTTP = allowHTTP
	return libResolver{r}
}

func (l libResolver) resolve(ctx context.Context, clientID string) (*appClient, error) {
	c, err := l.r.Resolve(ctx, clientID)
	if err != nil {
		if errors.Is(err, client.ErrInvalidClientID) || errors.Is(err, client.ErrInvalidClientMetadata) {
			return nil, oauthErr(400, CodeInvalidClient, "%v", err)
		}
		return nil, err
	}
	md := c.Metadata
	out := &appClient{
		ID:           c.ID,
		Loopback:     c.Loopback,
		AuthMethod:   c.AuthMethod,
		RedirectURIs: md.RedirectURIs,
		authenticate: func(form url.Values, issuer string, jtiSeen func(string, time.Time) bool) (string, error) {
			a, err := c.AuthenticateAssertion(form, issuer, jtiSeen)
			if err != nil {
				return "", err
			}
			if a.Method == client.AuthPrivateKeyJWT {
				// Bind the grant to the key: later requests must be signed by the same one.
				return a.Method + ":" + a.JKT, nil
			}
			return a.Method, nil
		},
		redirectAllowed: c.RedirectAllowed,
		scopeAllowed:    c.ScopeAllowed,
		allowsRefresh:   c.AllowsGrant("refresh_token"),
	}
	if !c.Loopback { // a loopback client's metadata is made up here: show none of it
		if md.ClientName != nil {
			out.Name = *md.ClientName
		}
		if md.ClientURI != nil && strings.HasPrefix(*md.ClientURI, "https://") {
			out.ClientURI = *md.ClientURI
		}
		if md.LogoURI != nil && strings.HasPrefix(*md.LogoURI, "https://") {
			out.LogoURI = *md.LogoURI
		}
	}
	return out, nil
}
