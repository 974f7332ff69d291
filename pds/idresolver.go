package pds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
	defaultIDResolverTimeout = 3 * time.Second
	// maxIdentityResponse bounds DID documents and well-known files (indigo reads did:web bodies unbounded).
	maxIdentityResponse = 256 << 10
	// identityCacheTTL is how long a resolution is trusted (the reference's stale TTL for DID documents).
	identityCacheTTL = time.Hour
)

// loadIdentityResolution reads the settings for resolving user-named hosts.
func (c *Config) loadIdentityResolution(getenv Getenv) error {
	var err error
	if c.DisableSSRFProtection, err = boolEnv(getenv, "PDS_DISABLE_SSRF_PROTECTION", c.DevMode); err != nil {
		return err
	}
	ms, err := intEnv(getenv, "PDS_ID_RESOLVER_TIMEOUT", int(defaultIDResolverTimeout/time.Millisecond))
	if err != nil {
		return err
	}
	if ms <= 0 {
		return fmt.Errorf("PDS_ID_RESOLVER_TIMEOUT: must be a positive number of milliseconds")
	}
	c.IDResolverTimeout = time.Duration(ms) * time.Millisecond
	if v := getenv("PDS_HANDLE_DNS_SERVER"); v != "" {
		if c.HandleDNSServer, err = dnsServerAddr(v); err != nil {
			return fmt.Errorf("PDS_HANDLE_DNS_SERVER: %w", err)
		}
	}
	for _, v := range splitList(getenv("PDS_HANDLE_BACKUP_NAMESERVERS")) {
		addr, err := dnsServerAddr(v)
		if err != nil {
			return fmt.Errorf("PDS_HANDLE_BACKUP_NAMESERVERS: %w", err)
		}
		c.HandleBackupNameservers = append(c.HandleBackupNameservers, addr)
	}
	return nil
}

// dnsServerAddr accepts "ip", "host" or "host:port" and returns host:port (port 53 by default).
func dnsServerAddr(v string) (string, error) {
	if _, _, err := net.SplitHostPort(v); err == nil {
		return v, nil
	}
	if strings.Contains(v, ":") && net.ParseIP(v) == nil {
		return "", fmt.Errorf("%q is not host[:port]", v)
	}
	return net.JoinHostPort(v, "53"), nil
}

// identityDirectories are the views of identities the server uses.
type identityDirectories struct {
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

// newIdentityDirectories builds the directories. With client set (tests, embedders), every identity request
// goes through it as given; otherwise user-named hosts get an SSRF-protected client.
func newIdentityDirectories(cfg *Config, client *http.Client) identityDirectories {
	timeout := cfg.IDResolverTimeout
	if timeout <= 0 {
		timeout = defaultIDResolverTimeout
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
	server := cfg.HandleDNSServer // a pinned DNS server for _atproto TXT lookups, else the system's
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
			FallbackDNSServers:     cfg.HandleBackupNameservers,
			SkipHandleVerification: skipHandles,
			UserAgent:              "pdsgo/" + Version,
		}
	}
	return identityDirectories{
		handles:  identity.NewCacheDirectory(base(false), 10000, identityCacheTTL, failedResolutionTTL, 5*time.Minute),
		docs:     identity.NewCacheDirectory(base(true), 10000, identityCacheTTL, failedResolutionTTL, 5*time.Minute),
		resolver: base(true),
		resolved: expirable.NewLRU[syntax.Handle, resolvedHandle](10000, nil, identityCacheTTL),
	}
}

// overrideDirectories wraps a Directory given in Options (tests, embedders) for every use.
func overrideDirectories(dir identity.Directory) identityDirectories {
	return identityDirectories{
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

func newIdentityTransport(cfg *Config, timeout time.Duration) *identityTransport {
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

// resolveHandle resolves a handle that is not hosted here to a DID. fresh skips the cache (a user who just set up
// their DNS record must not be told about a stale miss).
func (s *Server) resolveHandle(ctx context.Context, h syntax.Handle, fresh bool) (syntax.DID, error) {
	h = h.Normalize()
	if e, ok := s.ids.resolved.Get(h); ok && !fresh && time.Now().Before(e.expires) {
		return e.did, e.err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.resolverTimeout()+time.Second) // DNS, then HTTPS
	defer cancel()
	var did syntax.DID
	var err error
	if s.ids.resolver != nil {
		did, err = s.ids.resolver.ResolveHandle(ctx, h)
	} else {
		var ident *identity.Identity
		if ident, err = s.ids.handles.LookupHandle(ctx, h); err == nil {
			did = ident.DID
		}
	}
	e := resolvedHandle{did: did, err: err, expires: time.Now().Add(identityCacheTTL)}
	if err != nil {
		e.expires = time.Now().Add(failedResolutionTTL)
	}
	if ctx.Err() == nil { // a cancelled request says nothing about the handle
		s.ids.resolved.Add(h, e)
	}
	return did, err
}

// resolveDIDDoc resolves a DID document (keys, service endpoint, declared handle); fresh skips the cache.
func (s *Server) resolveDIDDoc(ctx context.Context, did syntax.DID, fresh bool) (*identity.Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, s.resolverTimeout()+time.Second)
	defer cancel()
	if fresh {
		s.ids.docs.Purge(ctx, did.AtIdentifier())
	}
	return s.ids.docs.LookupDID(ctx, did)
}

// forgetIdentity drops cached resolutions after this server changed them.
func (s *Server) forgetIdentity(ctx context.Context, did string, handles ...string) {
	ids := []syntax.AtIdentifier{}
	if d, err := syntax.ParseDID(did); err == nil {
		ids = append(ids, d.AtIdentifier())
	}
	for _, h := range handles {
		if hh, err := syntax.ParseHandle(h); err == nil {
			ids = append(ids, hh.AtIdentifier())
			s.ids.resolved.Remove(hh.Normalize())
		}
	}
	for _, id := range ids {
		s.ids.handles.Purge(ctx, id)
		if s.ids.docs != s.ids.handles {
			s.ids.docs.Purge(ctx, id)
		}
	}
}

func (s *Server) resolverTimeout() time.Duration {
	if s.cfg.IDResolverTimeout > 0 {
		return s.cfg.IDResolverTimeout
	}
	return defaultIDResolverTimeout
}
