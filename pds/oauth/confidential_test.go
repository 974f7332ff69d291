package oauth_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/oauth"
)

// TestConfidentialClient: a discoverable web client authenticating with private_key_jwt (indigo's confidential
// client), its metadata served over real HTTP. DNS is outside the machine: the provider's HTTP client dials
// client.example.com to the metadata server.
func TestConfidentialClient(t *testing.T) {
	var md []byte
	mdSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/client-metadata.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(md)
	}))
	defer mdSrv.Close()
	_, port, _ := net.SplitHostPort(mdSrv.Listener.Addr().String())
	fakeDNS := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, _ := net.SplitHostPort(addr); host != "client.example.com" {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			return (&net.Dialer{}).DialContext(ctx, network, mdSrv.Listener.Addr().String())
		}}}
	e := newEnv(t, func(c *oauth.Config) { c.ClientHTTP = fakeDNS; c.AllowHTTPClients = true })

	clientID := "http://client.example.com:" + port + "/client-metadata.json"
	cfg := ioauth.NewPublicConfig(clientID, "https://client.example.com/callback", []string{"atproto", "transition:generic"})
	key, _ := atcrypto.GeneratePrivateKeyP256()
	if err := cfg.SetClientSecret(key, "k1"); err != nil {
		t.Fatal(err)
	}
	meta := cfg.ClientMetadata()
	jwks := cfg.PublicJWKS()
	// A second key of the client's, in its JWKS too.
	other, _ := atcrypto.GeneratePrivateKeyP256()
	cfg2 := cfg
	cfg2.SetClientSecret(other, "k2")
	jwks.Keys = append(jwks.Keys, cfg2.PublicJWKS().Keys...)
	meta.JWKS = &jwks
	name, logo := "Example Calendar App", "https://client.example.com/logo.png"
	meta.ClientName, meta.LogoURI = &name, &logo
	md, _ = json.Marshal(meta)

	ca := ioauth.NewClientApp(&cfg, ioauth.NewMemStore())
	ca.Client = &http.Client{Timeout: 10 * time.Second}
	a := &app{Cfg: cfg, CA: ca, Meta: e.metadata()}
	info, authURL := a.Start(t, aliceHandle)

	b := newFormBrowser(t)
	resp := b.get(authURL)
	if !strings.Contains(b.last, name) || !strings.Contains(b.last, `src="https://client.example.com/logo.png"`) || strings.Contains(b.last, "development app") {
		t.Errorf("sign-in page does not name the app with its logo:\n%s", b.last)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src https://client.example.com") {
		t.Errorf("CSP does not allow the logo: %s", csp)
	}
	cb := e.approveWithForms(t, b, authURL, aliceHandle, alicePassword)
	if b.loc.Host != "client.example.com" || cb.Get("state") != info.State {
		t.Fatalf("redirect: %s", b.loc)
	}
	sess, tok := a.Finish(t, info, cb.Get("code"))
	if tok.Subject != aliceDID {
		t.Fatalf("sub %q", tok.Subject)
	}
	// Confidential clients get the long session (2 years) instead of the public 2 weeks.
	list, err := e.p.Sessions(context.Background(), aliceDID)
	if err != nil || len(list) != 1 || list[0].ExpiresAt.Before(time.Now().Add(365*24*time.Hour)) {
		t.Fatalf("confidential session lifetime: %+v %v", list, err)
	}
	if _, err := sess.RefreshTokens(context.Background()); err != nil {
		t.Fatalf("refresh with client assertion: %v", err)
	}
	if status, _ := e.whoami(t, sess); status != 200 {
		t.Fatal("resource call")
	}

	// Without its assertion, or replaying one, the client is refused.
	d := &dpopPoster{key: sess.DPoPPrivateKey}
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {sess.Data.RefreshToken}}
	if resp := d.post(t, e.issuer+"/oauth/token", refresh, true); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_client" {
		t.Errorf("refresh without client assertion: %d", resp.StatusCode)
	}
	assertion, _ := cfg.NewClientAssertion(e.issuer)
	refresh.Set("client_assertion_type", ioauth.ClientAssertionJWTBearer)
	refresh.Set("client_assertion", assertion)
	if resp := d.post(t, e.issuer+"/oauth/token", refresh, true); resp.StatusCode != 200 {
		t.Fatalf("control refresh: %d %s", resp.StatusCode, oauthErrorOf(resp))
	} else {
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		refresh.Set("refresh_token", body["refresh_token"].(string))
	}
	if resp := d.post(t, e.issuer+"/oauth/token", refresh, true); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_client" {
		t.Errorf("replayed client assertion: %d", resp.StatusCode)
	}
	// Another key of the client's own is not enough: the session is bound to the key that started it.
	assertion, _ = cfg2.NewClientAssertion(e.issuer)
	refresh.Set("client_assertion", assertion)
	if resp := d.post(t, e.issuer+"/oauth/token", refresh, true); resp.StatusCode != 400 || oauthErrorOf(resp) != "invalid_grant" {
		t.Errorf("refresh signed by the client's other key: %d", resp.StatusCode)
	}
}

// TestClientMetadataOnPrivateAddress: with the server's SSRF guard (internal/ssrf.Control at connect time), a
// client_id whose host resolves to a private address (here: loopback) is refused; TestConfidentialClient is the
// positive control with the same metadata server and an unguarded dialer.
func TestClientMetadataOnPrivateAddress(t *testing.T) {
	fetched := false
	mdSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched = true }))
	defer mdSrv.Close()
	_, port, _ := net.SplitHostPort(mdSrv.Listener.Addr().String())
	guarded := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// DNS (outside the machine) answers 127.0.0.1 for the client's host.
			return (&net.Dialer{Control: ssrf.Control}).DialContext(ctx, network, mdSrv.Listener.Addr().String())
		}}}
	e := newEnv(t, func(c *oauth.Config) { c.ClientHTTP = guarded; c.AllowHTTPClients = true })
	d := newDPoPPoster(t)
	form, _ := e.parForm(uniqueVerifier(t))
	form.Set("client_id", "http://client.example.com:"+port+"/client-metadata.json")
	form.Set("redirect_uri", "https://client.example.com/callback")
	resp := d.post(t, e.issuer+"/oauth/par", form, true)
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || body["error"] != "invalid_client" || !strings.Contains(body["error_description"], "not public") {
		t.Fatalf("client on a private address: %d %v", resp.StatusCode, body)
	}
	if fetched {
		t.Fatal("the metadata server was reached")
	}
}
