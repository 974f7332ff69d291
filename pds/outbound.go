package pds

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/accountstore"
)

// Outbound calls made on behalf of accounts (XRPC proxying, read-after-write lookups): the services they may
// reach, the one HTTP client they use, and the service-auth tokens they carry.

// ServiceConfig is a service the operator configured: its base URL and DID.
type ServiceConfig struct {
	URL string
	DID string
	// CDNURLPattern (AppView only, PDS_BSKY_APP_VIEW_CDN_URL_PATTERN) builds image URLs in read-after-write
	// views: three %s for the kind ("avatar", "feed_thumbnail"...), the DID and the blob CID.
	CDNURLPattern string
}

// ProxyConfig bounds a proxied call.
type ProxyConfig struct {
	HeadersTimeout  time.Duration // until the upstream's response headers (default 10 s)
	BodyTimeout     time.Duration // longest pause while reading the upstream's body (default 30 s)
	MaxResponseSize int64         // bytes (default 10 MB); also the cap on a forwarded request body
}

const (
	defaultProxyHeadersTimeout = 10 * time.Second
	defaultProxyBodyTimeout    = 30 * time.Second
	defaultProxyMaxResponse    = 10 << 20

	// serviceTokenTTL is the lifetime of the tokens the proxy signs (the reference's 60 s).
	serviceTokenTTL = time.Minute
)

// loadServices reads the configured services and proxy limits (the reference's variable names).
func (c *Config) loadServices(getenv Getenv) error {
	var err error
	if c.BskyAppView, err = serviceEnv(getenv, "PDS_BSKY_APP_VIEW"); err != nil {
		return err
	}
	if c.BskyAppView != nil {
		c.BskyAppView.CDNURLPattern = getenv("PDS_BSKY_APP_VIEW_CDN_URL_PATTERN")
	}
	if c.ModService, err = serviceEnv(getenv, "PDS_MOD_SERVICE"); err != nil {
		return err
	}
	if c.ReportService, err = serviceEnv(getenv, "PDS_REPORT_SERVICE"); err != nil {
		return err
	}
	if c.ReportService == nil && c.ModService != nil {
		c.ReportService = c.ModService // reports go to the moderation service unless told otherwise
	}
	c.Proxy = ProxyConfig{HeadersTimeout: defaultProxyHeadersTimeout, BodyTimeout: defaultProxyBodyTimeout,
		MaxResponseSize: defaultProxyMaxResponse}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"PDS_PROXY_HEADERS_TIMEOUT", &c.Proxy.HeadersTimeout}, {"PDS_PROXY_BODY_TIMEOUT", &c.Proxy.BodyTimeout}} {
		ms, err := intEnv(getenv, d.name, 0)
		if err != nil {
			return err
		}
		if ms < 0 {
			return fmt.Errorf("%s: must be a positive number of milliseconds", d.name)
		}
		if ms > 0 {
			*d.dst = time.Duration(ms) * time.Millisecond
		}
	}
	n, err := intEnv(getenv, "PDS_PROXY_MAX_RESPONSE_SIZE", 0)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("PDS_PROXY_MAX_RESPONSE_SIZE: must be a positive number of bytes")
	}
	if n > 0 {
		c.Proxy.MaxResponseSize = int64(n)
	}
	return nil
}

// serviceEnv reads <prefix>_URL and <prefix>_DID: both or neither.
func serviceEnv(getenv Getenv, prefix string) (*ServiceConfig, error) {
	u, did := strings.TrimRight(getenv(prefix+"_URL"), "/"), getenv(prefix+"_DID")
	if u == "" && did == "" {
		return nil, nil
	}
	if u == "" || did == "" {
		return nil, fmt.Errorf("%s_URL and %s_DID must be set together", prefix, prefix)
	}
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, fmt.Errorf("%s_URL: not an http(s) URL: %q", prefix, u)
	}
	if _, err := syntax.ParseDID(did); err != nil {
		return nil, fmt.Errorf("%s_DID: %w", prefix, err)
	}
	return &ServiceConfig{URL: u, DID: did}, nil
}

// configuredServices lists the operator's services (for the SSRF allow list and proxy targets).
func (c *Config) configuredServices() []*ServiceConfig {
	var out []*ServiceConfig
	for _, s := range []*ServiceConfig{c.BskyAppView, c.ModService, c.ReportService} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// outbound makes the calls forwarded to other services. Connections go through the SSRF guard (unless
// PDS_DISABLE_SSRF_PROTECTION): only public addresses, except the configured services' own host:port.
// Redirects are not followed (a proxied call answers with whatever the service answered), and there is no
// overall timeout: the proxy bounds the wait for headers and each pause in the body itself.
type outbound struct {
	client *http.Client
}

func newOutbound(cfg *Config) *outbound {
	var allow []string
	for _, svc := range cfg.configuredServices() {
		allow = append(allow, ssrf.HostPort(svc.URL))
	}
	t := ssrf.NewTransport(cfg.DisableSSRFProtection, allow...)
	t.MaxIdleConnsPerHost = 64 // most calls go to one AppView: keep its connections
	t.ForceAttemptHTTP2 = false
	return &outbound{client: &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (o *outbound) Do(req *http.Request) (*http.Response, error) { return o.client.Do(req) }

// serviceToken signs a service-auth JWT for acct: iss = the account's DID, aud (a DID, or DID#service when a
// client asked getServiceAuth for that), lxm the method it is good for ("" = any), random jti. exp zero means
// the default 60 s.
func (o *outbound) serviceToken(acct *accountstore.Account, aud, lxm string, exp time.Time) (string, error) {
	key, err := acct.Signer() // parsed once per cached account (accountstore)
	if err != nil {
		return "", fmt.Errorf("account signing key: %w", err)
	}
	var method *syntax.NSID
	if lxm != "" {
		m, err := syntax.ParseNSID(lxm)
		if err != nil {
			return "", err
		}
		method = &m
	}
	ttl := serviceTokenTTL
	if !exp.IsZero() {
		// SignServiceAuth takes a lifetime; exp is whole seconds, and the JWT's exp is truncated to seconds,
		// so now+ttl lands on exp exactly.
		ttl = time.Until(exp)
	}
	return auth.SignServiceAuth(syntax.DID(acct.DID), aud, ttl, method, key)
}
