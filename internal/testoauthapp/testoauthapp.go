// Package testoauthapp is an atproto OAuth client app for tests: indigo's Go client as a loopback development
// client, and the loopback redirect target it sends browsers back to.
package testoauthapp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Callback is the app's loopback redirect target: it records the query of each redirect.
type Callback struct {
	srv *httptest.Server
	Got chan url.Values
}

// NewCallback starts the redirect target (stopped when the test ends).
func NewCallback(t testing.TB) *Callback {
	c := &Callback{Got: make(chan url.Values, 10)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			c.Got <- r.URL.Query()
		}
		io.WriteString(w, "<!doctype html><title>done</title><p id=done>done</p>")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// URL is the redirect URI.
func (c *Callback) URL() string { return c.srv.URL + "/callback" }

// Wait returns the next redirect's query.
func (c *Callback) Wait(t testing.TB) url.Values {
	t.Helper()
	select {
	case v := <-c.Got:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("the app's redirect URI was never reached")
		return nil
	}
}

// Metadata fetches the authorization server metadata of issuer.
func Metadata(t testing.TB, issuer string) *ioauth.AuthServerMetadata {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m ioauth.AuthServerMetadata
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// App is an atproto OAuth client app using indigo's Go client (a loopback development client).
type App struct {
	Cfg  ioauth.ClientConfig
	CA   *ioauth.ClientApp
	Meta *ioauth.AuthServerMetadata
}

// NewApp makes an app of issuer's server redirecting to callbackURL (scopes default: atproto transition:generic).
func NewApp(t testing.TB, issuer, callbackURL string, scopes ...string) *App {
	if len(scopes) == 0 {
		scopes = []string{"atproto", "transition:generic"}
	}
	cfg := ioauth.NewLocalhostConfig(callbackURL, scopes)
	ca := ioauth.NewClientApp(&cfg, ioauth.NewMemStore())
	ca.Client = &http.Client{Timeout: 10 * time.Second}
	return &App{Cfg: cfg, CA: ca, Meta: Metadata(t, issuer)}
}

// Start sends the PAR and returns the request data and the URL to open in a browser.
func (a *App) Start(t testing.TB, hint string) (*ioauth.AuthRequestData, string) {
	t.Helper()
	info, err := a.CA.SendAuthRequest(context.Background(), a.Meta, a.Cfg.Scopes, hint)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"client_id": {a.Cfg.ClientID}, "request_uri": {info.RequestURI}}
	return info, a.Meta.AuthorizationEndpoint + "?" + q.Encode()
}

// Finish exchanges the code and returns a client session (indigo's) for refresh, revoke and resource calls.
func (a *App) Finish(t testing.TB, info *ioauth.AuthRequestData, code string) (*ioauth.ClientSession, *ioauth.TokenResponse) {
	t.Helper()
	tok, err := a.CA.SendInitialTokenRequest(context.Background(), code, *info)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := atcrypto.ParsePrivateMultibase(info.DPoPPrivateKeyMultibase)
	if err != nil {
		t.Fatal(err)
	}
	sess := &ioauth.ClientSession{Client: a.CA.Client, Config: &a.Cfg, DPoPPrivateKey: priv, Data: &ioauth.ClientSessionData{
		AccountDID: syntax.DID(tok.Subject), SessionID: info.State, HostURL: info.AuthServerURL,
		AuthServerURL: info.AuthServerURL, AuthServerTokenEndpoint: info.AuthServerTokenEndpoint,
		AuthServerRevocationEndpoint: info.AuthServerRevocationEndpoint, Scopes: strings.Fields(tok.Scope),
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, DPoPAuthServerNonce: info.DPoPAuthServerNonce,
		DPoPHostNonce: info.DPoPAuthServerNonce, DPoPPrivateKeyMultibase: info.DPoPPrivateKeyMultibase,
	}}
	return sess, tok
}
