package accounts

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/pdsgo/pds/internal/ssrf"
)

// Identity resolution of hosts that users name: custom-domain handles (DNS TXT _atproto.<domain>, then
// https://<domain>/.well-known/atproto-did) and did:web documents. These requests go wherever a user points
// them, so in production they cannot reach private, loopback or link-local addresses (internal/ssrf); the
// configured PLC directory is trusted and reached directly.

const (
	// DefaultResolverTimeout bounds an identity resolution when the configuration does not.
	DefaultResolverTimeout = 3 * time.Second
	// maxIdentityResponse bounds DID documents and well-known files (indigo reads did:web bodies unbounded).
	maxIdentityResponse = 256 << 10
	// identityCacheTTL is how long a resolution is trusted (the reference's stale TTL for DID documents).
	identityCacheTTL = time.Hour
)

// IdentityConfig is how identities are resolved.
type IdentityConfig struct {
	PLCURL string
	// Timeout bounds one request; 0 is DefaultResolverTimeout.
	Timeout time.Duration
	// DNSServer (host:port) pins the server for _atproto TXT lookups; BackupNameservers are tried after.
	DNSServer         string
	BackupNameservers []string
	// DisableSSRFProtection lets user-named hosts resolve to private addresses (development).
	DisableSSRFProtection bool
	UserAgent             string
}

// Directories are the views of identities the server uses.
type Directories struct {
	// handles is an indigo Directory (cached): handle and DID lookups verified both ways.
	handles identity.Directory
	// docs resolves DID documents without re-resolving their handle (cached): keys and service endpoints.
	docs identity.Directory
	// resolver resolves a handle to a DID without asking the DID document (DNS, then HTTPS): what handle
	// verification and resolveHandle need. indigo's CacheDirectory.ResolveHandle would check both ways, which a
	// handle the document does not declare yet (an updateHandle in progress) fails. nil: use handles.
	resolver handleResolver
	// resolved caches resolver's answers.
	resolved *expirable.LRU[syntax.Handle, resolvedHandle]
}

type resolvedHandle struct {
	did     syntax.DID
	err     error
	expires time.Time
}

// failedResolutionTTL is how long a failed handle resolution is remembered (successes: identityCacheTTL).
const failedResolutionTTL = 2 * time.Minute

// NewDirectories builds the directories. With client set (tests, embedders), every identity request
// goes through it as given; otherwise user-named hosts get an SSRF-protected client.
func NewDirectories(cfg IdentityConfig, client *http.Client) *Directories {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultResolverTimeout
	}
	var hc http.Client
	if client != nil {
		hc = *client
	} else {
		hc = http.Client{Transport: newIdentityTransport(cfg, timeout)}
	}
	if hc.Timeout == 0 || hc.Timeout > timeout {
		hc.Timeout = timeout
	}
	server := cfg.DNSServer // a pinned DNS server for _atproto TXT lookups, else the system's
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		if server != "" {
			address = server
		}
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, network, address)
	}
	base := func(skipHandles bool) *identity.BaseDirectory {
		return &identity.BaseDirectory{
			PLCURL:                 cfg.PLCURL,
			HTTPClient:             hc,
			Resolver:               net.Resolver{PreferGo: true, Dial: dial},
			TryAuthoritativeDNS:    server == "", // a pinned server is the authority
			SkipDNSDomainSuffixes:  []string{".bsky.social"},
			FallbackDNSServers:     cfg.BackupNameservers,
			SkipHandleVerification: skipHandles,
			UserAgent:              cfg.UserAgent,
		}
	}
	return &Directories{
		handles:  identity.NewCacheDirectory(base(false), 10000, identityCacheTTL, failedResolutionTTL, 5*time.Minute),
		docs:     identity.NewCacheDirectory(base(true), 10000, identityCacheTTL, failedResolutionTTL, 5*time.Minute),
		resolver: base(true),
		resolved: expirable.NewLRU[syntax.Handle, resolvedHandle](10000, nil, identityCacheTTL),
	}
}

// OverrideDirectories wraps a Directory given in Options (tests, embedders) for every use.
func OverrideDirectories(dir identity.Directory) *Directories {
	return &Directories{
		handles:  dir,
		docs:     dir,
		resolved: expirable.NewLRU[syntax.Handle, resolvedHandle](10000, nil, identityCacheTTL),
	}
}

// identityTransport carries identity requests: connections to user-named hosts may only reach public addresses
// (internal/ssrf; the configured PLC directory is exempt, it is operator configuration), and every response
// body is bounded.
type identityTransport struct {
	rt http.RoundTripper
}

func newIdentityTransport(cfg IdentityConfig, timeout time.Duration) *identityTransport {
	t := ssrf.NewTransport(cfg.DisableSSRFProtection, ssrf.HostPort(cfg.PLCURL))
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	return &identityTransport{rt: t}
}

func (t *identityTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxIdentityResponse}
	return resp, nil
}

// limitedBody fails a read past its limit instead of silently truncating (a cut JSON document must not parse).
type limitedBody struct {
	io.ReadCloser
	left int64
}

var errResponseTooLarge = errors.New("identity response too large")

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errResponseTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// handleResolver is implemented by indigo's BaseDirectory and CacheDirectory: resolution without the reverse
// check against the DID document.
type handleResolver interface {
	ResolveHandle(ctx context.Context, h syntax.Handle) (syntax.DID, error)
}

// Docs resolves DID documents (cached), without re-resolving their handle.
func (d *Directories) Docs() identity.Directory { return d.docs }

// ResolveHandle resolves a handle that is not hosted here to a DID. fresh skips the cache (a user who just set up
// their DNS record must not be told about a stale miss).
func (s *Service) ResolveHandle(ctx context.Context, h syntax.Handle, fresh bool) (syntax.DID, error) {
	h = h.Normalize()
	if e, ok := s.d.IDs.resolved.Get(h); ok && !fresh && time.Now().Before(e.expires) {
		return e.did, e.err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.resolverTimeout()+time.Second) // DNS, then HTTPS
	defer cancel()
	var did syntax.DID
	var err error
	if s.d.IDs.resolver != nil {
		did, err = s.d.IDs.resolver.ResolveHandle(ctx, h)
	} else {
		var ident *identity.Identity
		if ident, err = s.d.IDs.handles.LookupHandle(ctx, h); err == nil {
			did = ident.DID
		}
	}
	e := resolvedHandle{did: did, err: err, expires: time.Now().Add(identityCacheTTL)}
	if err != nil {
		e.expires = time.Now().Add(failedResolutionTTL)
	}
	if ctx.Err() == nil { // a cancelled request says nothing about the handle
		s.d.IDs.resolved.Add(h, e)
	}
	return did, err
}

// ResolveDIDDoc resolves a DID document (keys, service endpoint, declared handle); fresh skips the cache.
func (s *Service) ResolveDIDDoc(ctx context.Context, did syntax.DID, fresh bool) (*identity.Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, s.resolverTimeout()+time.Second)
	defer cancel()
	if fresh {
		s.d.IDs.docs.Purge(ctx, did.AtIdentifier())
	}
	return s.d.IDs.docs.LookupDID(ctx, did)
}

// forgetIdentity drops cached resolutions after this server changed them.
func (s *Service) forgetIdentity(ctx context.Context, did syntax.DID, handles ...string) {
	ids := []syntax.AtIdentifier{}
	if did != "" {
		ids = append(ids, did.AtIdentifier())
	}
	for _, h := range handles {
		if hh, err := syntax.ParseHandle(h); err == nil {
			ids = append(ids, hh.AtIdentifier())
			s.d.IDs.resolved.Remove(hh.Normalize())
		}
	}
	for _, id := range ids {
		s.d.IDs.handles.Purge(ctx, id)
		if s.d.IDs.docs != s.d.IDs.handles {
			s.d.IDs.docs.Purge(ctx, id)
		}
	}
}

func (s *Service) resolverTimeout() time.Duration {
	if s.cfg.ResolverTimeout > 0 {
		return s.cfg.ResolverTimeout
	}
	return DefaultResolverTimeout
}
