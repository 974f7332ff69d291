package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth/oauth"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/net/publicsuffix"
)

// Resolver defaults.
const (
	DefaultTTL       = 10 * time.Minute // cache lifetime without (or below/above) a usable Cache-Control max-age
	DefaultMinTTL    = time.Minute
	DefaultMaxTTL    = time.Hour
	DefaultMaxSize   = 64 << 10
	DefaultTimeout   = 10 * time.Second
	DefaultCacheSize = 10_000
)

// Resolver turns a client_id into a validated Client. Configure before first use; Resolve is safe for
// concurrent use. The zero value works but has no HTTP client (discoverable clients then fail).
type Resolver struct {
	// HTTPClient fetches metadata and jwks_uri documents. The server passes an SSRF-guarded client
	// (internal/ssrf.NewClient(false, timeout)). Redirects are never followed, whatever the client's policy.
	HTTPClient *http.Client
	// TTL is the cache lifetime of a document without Cache-Control max-age; MinTTL and MaxTTL bound max-age.
	TTL, MinTTL, MaxTTL time.Duration
	// MaxSize bounds a fetched document in bytes; Timeout bounds one fetch.
	MaxSize int64
	Timeout time.Duration
	// CacheSize bounds the number of cached clients.
	CacheSize int
	// AllowHTTP accepts http:// client_id and jwks_uri URLs (and a port in the client_id). Tests only.
	AllowHTTP bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	once  sync.Once
	cache *lru.Cache[string, cached]
}

type cached struct {
	client  *Client
	expires time.Time
}

// NewResolver returns a Resolver with the defaults, fetching through hc.
func NewResolver(hc *http.Client) *Resolver { return &Resolver{HTTPClient: hc} }

func (r *Resolver) init() {
	r.once.Do(func() {
		size := r.CacheSize
		if size <= 0 {
			size = DefaultCacheSize
		}
		r.cache, _ = lru.New[string, cached](size)
	})
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func orDefault[T int64 | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Resolve returns the client for clientID: a loopback client built from the id itself, or a discoverable client
// whose metadata (and jwks_uri) is fetched, validated and cached. Errors wrap ErrInvalidClientID or
// ErrInvalidClientMetadata; invalid documents are not cached.
func (r *Resolver) Resolve(ctx context.Context, clientID string) (*Client, error) {
	if IsLoopbackClientID(clientID) {
		md, err := loopbackMetadata(clientID)
		if err != nil {
			return nil, err
		}
		if err := validateMetadata(clientID, md, nil, true); err != nil {
			return nil, err
		}
		return &Client{ID: clientID, Metadata: md, Loopback: true, AuthMethod: AuthNone, Now: r.Now}, nil
	}
	idURL, err := r.parseDiscoverableID(clientID)
	if err != nil {
		return nil, err
	}
	r.init()
	now := r.now()
	if c, ok := r.cache.Get(clientID); ok && now.Before(c.expires) {
		return c.client, nil
	}
	c, ttl, err := r.fetchClient(ctx, idURL)
	if err != nil {
		return nil, err
	}
	if ttl > 0 {
		r.cache.Add(clientID, cached{client: c, expires: now.Add(ttl)})
	}
	return c, nil
}

// Forget drops a cached client (for instance after a failed assertion, to pick up rotated keys).
func (r *Resolver) Forget(clientID string) {
	r.init()
	r.cache.Remove(clientID)
}

// parseDiscoverableID checks a client_id URL as @atproto/oauth-types does: https, no credentials, port or
// fragment, a path that is not "/" and does not end in "/", canonical form, and a host name (not an IP) whose
// suffix is on the Public Suffix List.
func (r *Resolver) parseDiscoverableID(clientID string) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidClientID, why)
	}
	u, err := url.Parse(clientID)
	if err != nil {
		return bad("not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && r.AllowHTTP:
	default:
		return bad("must be an https URL")
	}
	switch {
	case u.User != nil:
		return bad("must not contain credentials")
	case u.Fragment != "" || strings.Contains(clientID, "#"):
		return bad("must not contain a fragment")
	case u.Port() != "" && !r.AllowHTTP:
		return bad("must not contain a port")
	case u.Opaque != "" || u.Host == "":
		return bad("must have a host")
	case u.Path == "" || u.Path == "/":
		return bad(`must have a path (e.g. "/client-metadata.json")`)
	case strings.HasSuffix(u.Path, "/"):
		return bad("path must not end with a slash")
	}
	if _, err := netip.ParseAddr(u.Hostname()); err == nil {
		return bad("host must not be an IP address")
	}
	if !isInternetHost(u.Hostname()) {
		return bad("host must be a domain under a public suffix")
	}
	// Canonical form: what a WHATWG parser would print back (lower-case host, no dot segments, no escapes that
	// change on normalisation).
	canon := *u
	canon.Host = strings.ToLower(u.Host)
	if canon.String() != clientID || hasDotSegment(u.EscapedPath()) {
		return bad("must be in canonical form")
	}
	return u, nil
}

// isInternetHost: a registrable name under a suffix on the Public Suffix List (the reference uses psl's
// "listed"). Unlisted TLDs (localhost, .local, .internal, ...) fall to the list's default rule.
func isInternetHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || strings.Contains(host, "..") {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(host)
	listed := icann || strings.Contains(suffix, ".")
	return listed && len(host) > len(suffix) && strings.HasSuffix(host, "."+suffix)
}

func hasDotSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// errNoRedirect stops the HTTP client at a redirect: the spec wants a 200 from the client_id URL itself.
var errNoRedirect = errors.New("redirects are not followed")

func (r *Resolver) httpClient() *http.Client {
	hc := http.Client{}
	if r.HTTPClient != nil {
		hc = *r.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return errNoRedirect }
	return &hc
}

// fetchJSON GETs a JSON document: status exactly 200, a JSON media type, at most MaxSize bytes. It returns the
// body and the cache lifetime the response allows.
func (r *Resolver) fetchJSON(ctx context.Context, u string, mediaTypes ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(r.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.httpClient().Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("HTTP status %d (want 200)", resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !contains(mediaTypes, mt) {
		return nil, 0, fmt.Errorf("content type %q is not %s", resp.Header.Get("Content-Type"), strings.Join(mediaTypes, " or "))
	}
	max := orDefault(r.MaxSize, DefaultMaxSize)
	if resp.ContentLength > max {
		return nil, 0, fmt.Errorf("document larger than %d bytes", max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(body)) > max {
		return nil, 0, fmt.Errorf("document larger than %d bytes", max)
	}
	return body, r.cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// cacheTTL honours Cache-Control: no-store/no-cache mean no caching, max-age is clamped to [MinTTL, MaxTTL],
// otherwise TTL.
func (r *Resolver) cacheTTL(cc string) time.Duration {
	ttl := orDefault(r.TTL, DefaultTTL)
	minTTL, maxTTL := orDefault(r.MinTTL, DefaultMinTTL), orDefault(r.MaxTTL, DefaultMaxTTL)
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(d, "max-age="), `"`), 10, 64); err == nil && n >= 0 {
				ttl = min(max(time.Duration(n)*time.Second, minTTL), maxTTL)
			}
		}
	}
	return ttl
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Resolver) fetchClient(ctx context.Context, idURL *url.URL) (*Client, time.Duration, error) {
	clientID := idURL.String()
	body, ttl, err := r.fetchJSON(ctx, clientID, "application/json")
	if err != nil {
		return nil, 0, fmt.Errorf("%w: fetching %s: %w", ErrInvalidClientMetadata, clientID, err)
	}
	var md oauth.ClientMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalidClientMetadata, err)
	}
	var extra extraMetadata
	if err := json.Unmarshal(body, &extra); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalidClientMetadata, err)
	}
	if err := validateMetadata(clientID, &md, &extra, false); err != nil {
		return nil, 0, err
	}
	c := &Client{ID: clientID, Metadata: &md, AuthMethod: md.TokenEndpointAuthMethod, Now: r.Now}
	if c.AuthMethod == AuthPrivateKeyJWT {
		jwks := extra.JWKS
		if md.JWKSURI != nil {
			u, err := url.Parse(*md.JWKSURI)
			if err != nil || !(u.Scheme == "https" || (r.AllowHTTP && u.Scheme == "http")) || u.Host == "" || u.User != nil {
				return nil, 0, fmt.Errorf("%w: jwks_uri must be an https URL", ErrInvalidClientMetadata)
			}
			b, jwksTTL, err := r.fetchJSON(ctx, *md.JWKSURI, "application/json", "application/jwk-set+json")
			if err != nil {
				return nil, 0, fmt.Errorf("%w: fetching jwks_uri: %w", ErrInvalidClientMetadata, err)
			}
			jwks = json.RawMessage(b)
			ttl = min(ttl, jwksTTL)
		}
		if c.Keys, err = parseJWKS(jwks); err != nil {
			return nil, 0, err
		}
	}
	return c, ttl, nil
}

// parseJWKS keeps the keys that can sign ES256 client assertions: EC P-256, with a kid, alg ES256 or unset,
// use sig or unset. A key with private members makes the whole set invalid.
func parseJWKS(raw json.RawMessage) ([]Key, error) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &set) != nil {
		return nil, fmt.Errorf("%w: jwks is not a JWK set", ErrInvalidClientMetadata)
	}
	var keys []Key
	for _, m := range set.Keys {
		for _, p := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := m[p]; ok {
				return nil, fmt.Errorf("%w: jwks contains a private key", ErrInvalidClientMetadata)
			}
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		if str("kty") != "EC" || str("crv") != "P-256" || str("kid") == "" ||
			(str("alg") != "" && str("alg") != "ES256") || (str("use") != "" && str("use") != "sig") {
			continue
		}
		pub, err := atcrypto.ParsePublicJWK(atcrypto.JWK{KeyType: "EC", Curve: "P-256", X: str("x"), Y: str("y")})
		if err != nil {
			return nil, fmt.Errorf("%w: jwks key %q: %v", ErrInvalidClientMetadata, str("kid"), err)
		}
		keys = append(keys, Key{KID: str("kid"), Key: pub})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: jwks has no ES256 signing key with a kid", ErrInvalidClientMetadata)
	}
	return keys, nil
}
