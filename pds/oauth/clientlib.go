package oauth

// TEMPORARY until package pds/oauth/client lands (branch oauthlib): loopback development clients only.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

type tempResolver struct{}

func newClientResolver(_ *http.Client) clientSource { return tempResolver{} }

func (tempResolver) resolve(ctx context.Context, clientID string) (*appClient, error) {
	u, err := url.Parse(clientID)
	if err != nil || u.Scheme != "http" || u.Host != "localhost" || (u.Path != "" && u.Path != "/") {
		return nil, oauthErr(400, CodeInvalidClient, "only loopback clients are supported yet")
	}
	q := u.Query()
	redirects := q["redirect_uri"]
	if len(redirects) == 0 {
		redirects = []string{"http://127.0.0.1/", "http://[::1]/"}
	}
	sc := q.Get("scope")
	if sc == "" {
		sc = "atproto"
	}
	allowed := strings.Fields(sc)
	return &appClient{
		ID: clientID, Loopback: true, AuthMethod: "none", RedirectURIs: redirects,
		authenticate: func(form url.Values, issuer string, _ func(string, time.Time) bool) error {
			if form.Get("client_assertion") != "" {
				return errors.New("loopback clients do not authenticate")
			}
			return nil
		},
		redirectAllowed: func(uri string) bool {
			ru, err := url.Parse(uri)
			if err != nil {
				return false
			}
			for _, r := range redirects {
				au, _ := url.Parse(r)
				if au != nil && au.Scheme == ru.Scheme && au.Hostname() == ru.Hostname() && au.Path == ru.Path {
					return true
				}
			}
			return false
		},
		scopeAllowed: func(s string) bool { return slices.Contains(allowed, s) },
	}, nil
}

func describeScope(s string) []string { return strings.Fields(s) }

func validateScope(s string) error { return nil }
