package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/repo"
)

// Service is a service the operator configured: its base URL and DID.
type Service struct {
	URL string
	DID string
	// CDNURLPattern (AppView only, PDS_BSKY_APP_VIEW_CDN_URL_PATTERN) builds image URLs in read-after-write
	// views: three %s for the kind ("avatar", "feed_thumbnail"...), the DID and the blob CID.
	CDNURLPattern string
}

// Limits bound a proxied call.
type Limits struct {
	HeadersTimeout  time.Duration // until the upstream's response headers (default 10 s)
	BodyTimeout     time.Duration // longest pause while reading the upstream's body (default 30 s)
	MaxResponseSize int64         // bytes (default 10 MB); also the cap on a forwarded request body
}

// Config is what the proxy reads of the server's configuration.
type Config struct {
	AppView       *Service // app.bsky and chat.bsky
	ModService    *Service // tools.ozone
	ReportService *Service // createReport
	Limits        Limits
	// PublicURL is this PDS's URL: read-after-write views point at its getBlob when no CDN is configured.
	PublicURL string
	// DisableSSRFProtection allows private and loopback targets.
	DisableSSRFProtection bool
	UserAgent             string
}

// services lists the operator's services (for the SSRF allow list and proxy targets).
func (c *Config) services() []*Service {
	var out []*Service
	for _, s := range []*Service{c.AppView, c.ModService, c.ReportService} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Caller is who makes a proxied call.
type Caller struct {
	DID         syntax.DID
	AppPassword bool // an ordinary app-password session (refused privileged methods)
	// RequireRPC checks an OAuth grant's rpc: permission for a method at a service ("did#service_id"); nil
	// for session tokens, whose access the proxy's own rules decide.
	RequireRPC func(lxm, aud string) error
}

// requireRPC runs the caller's rpc: check for each method at the call's service.
func (c Caller) requireRPC(aud string, lxms ...string) error {
	if c.RequireRPC == nil {
		return nil
	}
	for _, lxm := range lxms {
		if err := c.RequireRPC(lxm, aud); err != nil {
			return err
		}
	}
	return nil
}

// Deps is what the proxy needs from the rest of the server.
type Deps struct {
	Log      *slog.Logger
	Accounts Accounts    // signing keys, handles
	Repos    *repo.Store // the account's newer records (read-after-write)
	// ResolveDID resolves a service's DID document (cached).
	ResolveDID func(ctx context.Context, did syntax.DID) (*identity.Identity, error)
	// Authenticate authenticates a request the router's fallback is about to forward.
	Authenticate func(c echo.Context) (Caller, error)
	// CallerDID is the account a request was authenticated as, by the route's auth middleware.
	CallerDID func(c echo.Context) syntax.DID
	// Caller is the caller the route's auth middleware set (for the rpc: check of the routes served here).
	Caller func(c echo.Context) Caller
	// Metrics, when set, is told every outbound call's service, status and latency.
	Metrics Metrics
}

// Proxy makes the calls forwarded to other services.
type Proxy struct {
	cfg Config
	Deps
	client *http.Client
}

// New builds the proxy and its outbound client.
func New(cfg Config, deps Deps) *Proxy {
	client := newClient(&cfg)
	if deps.Metrics != nil {
		client.Transport = newObservedTransport(client.Transport, deps.Metrics, &cfg)
	}
	return &Proxy{cfg: cfg, Deps: deps, client: client}
}

const (
	// serviceTokenTTL is the lifetime of the tokens the proxy signs (the reference's 60 s).
	serviceTokenTTL = time.Minute
)

// newClient is the client for the calls forwarded to other services. Connections go through the SSRF guard (unless
// PDS_DISABLE_SSRF_PROTECTION): only public addresses, except the configured services' own host:port.
// Redirects are not followed (a proxied call answers with whatever the service answered), and there is no
// overall timeout: the proxy bounds the wait for headers and each pause in the body itself.
func newClient(cfg *Config) *http.Client {
	var allow []string
	for _, svc := range cfg.services() {
		allow = append(allow, ssrf.HostPort(svc.URL))
	}
	t := ssrf.NewTransport(cfg.DisableSSRFProtection, allow...)
	t.MaxIdleConnsPerHost = 64 // most calls go to one AppView: keep its connections
	t.ForceAttemptHTTP2 = false
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ServiceToken signs a service-auth JWT for acct: iss = the account's DID, aud (a DID, or DID#service when a
// client asked getServiceAuth for that), lxm the method it is good for ("" = any), random jti. exp zero means
// the default 60 s.
func (p *Proxy) ServiceToken(acct *accountstore.Account, aud, lxm string, exp time.Time) (string, error) {
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
	return auth.SignServiceAuth(acct.DID, aud, ttl, method, key)
}

// Accounts is what the proxy reads of the accounts (accounts.Service): the caller's account, for its signing
// key, and the account a handle names.
type Accounts interface {
	// ByDID loads an account; 400 AccountNotFound when it is gone.
	ByDID(ctx context.Context, did syntax.DID) (*accountstore.Account, error)
	AccountByHandle(ctx context.Context, handle string) (*accountstore.Account, error)
}
