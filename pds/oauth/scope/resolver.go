package scope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache lifetimes from the permission spec: re-resolve a set once it is stale (24 h recommended, and a firm
// upper bound), but keep serving the stale copy if resolution fails until it expires (90 days recommended).
const (
	DefaultStaleAfter  = 24 * time.Hour
	DefaultExpireAfter = 90 * 24 * time.Hour
	defaultTimeout     = 10 * time.Second
	defaultMaxSize     = 256 << 10
	defaultCacheSize   = 1000
)

// ErrNotPermissionSet: the NSID resolved to a Lexicon whose main definition is not a permission set.
var ErrNotPermissionSet = errors.New("lexicon is not a permission set")

// LexiconResolver resolves permission sets through atproto Lexicon resolution: the NSID's authority domain
// answers a DNS TXT query for _lexicon.<authority> with did=<DID>; that DID's PDS serves the schema as the
// com.atproto.lexicon.schema record whose key is the NSID. Results are cached as the permission spec asks.
// Configure before first use; Resolve is safe for concurrent use.
//
// The record is read with com.atproto.repo.getRecord, as indigo's lexicon resolver does; the repository's
// commit signature is not checked (see the package report).
type LexiconResolver struct {
	// Directory resolves the DID to its PDS (the server passes its identity directory).
	Directory identity.Directory
	// DNSServer ("host:port") answers the _lexicon TXT queries; empty means the system resolver. The server passes
	// its pinned handle DNS server (PDS_HANDLE_DNS_SERVER) when set.
	DNSServer string
	// HTTPClient fetches the record from the PDS (the server passes an SSRF-guarded client).
	HTTPClient *http.Client
	// StaleAfter and ExpireAfter are the cache lifetimes (defaults above).
	StaleAfter, ExpireAfter time.Duration
	// Timeout bounds one resolution; MaxSize the record response in bytes.
	Timeout time.Duration
	MaxSize int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	once  sync.Once
	cache *lru.Cache[syntax.NSID, cachedSet]
}

type cachedSet struct {
	set     *lexicon.SchemaPermissionSet
	fetched time.Time
}

// NewLexiconResolver returns a resolver using dir for DIDs and hc for record fetches.
func NewLexiconResolver(dir identity.Directory, hc *http.Client) *LexiconResolver {
	return &LexiconResolver{Directory: dir, HTTPClient: hc}
}

func (r *LexiconResolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func dur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// Resolve returns the permission set the NSID names: from the cache while fresh, re-resolved once stale (the
// stale copy is kept if that fails, until it expires).
func (r *LexiconResolver) Resolve(ctx context.Context, nsid syntax.NSID) (*lexicon.SchemaPermissionSet, error) {
	r.once.Do(func() { r.cache, _ = lru.New[syntax.NSID, cachedSet](defaultCacheSize) })
	now := r.now()
	c, ok := r.cache.Get(nsid)
	if ok && now.Sub(c.fetched) < dur(r.StaleAfter, DefaultStaleAfter) {
		return c.set, nil
	}
	set, err := r.resolve(ctx, nsid)
	if err != nil {
		if ok && now.Sub(c.fetched) < dur(r.ExpireAfter, DefaultExpireAfter) {
			return c.set, nil
		}
		return nil, err
	}
	r.cache.Add(nsid, cachedSet{set: set, fetched: now})
	return set, nil
}

// Forget drops a cached set.
func (r *LexiconResolver) Forget(nsid syntax.NSID) {
	r.once.Do(func() { r.cache, _ = lru.New[syntax.NSID, cachedSet](defaultCacheSize) })
	r.cache.Remove(nsid)
}

func (r *LexiconResolver) resolve(ctx context.Context, nsid syntax.NSID) (*lexicon.SchemaPermissionSet, error) {
	ctx, cancel := context.WithTimeout(ctx, dur(r.Timeout, defaultTimeout))
	defer cancel()

	// NSID -> DID through DNS (indigo's resolution, with our resolver).
	base := identity.BaseDirectory{}
	if server := r.DNSServer; server != "" {
		base.Resolver = net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	did, err := base.ResolveNSID(ctx, nsid)
	if err != nil {
		return nil, fmt.Errorf("resolving NSID %s: %w", nsid, err)
	}
	if r.Directory == nil {
		return nil, errors.New("no identity directory configured")
	}
	ident, err := r.Directory.LookupDID(ctx, did)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", did, err)
	}
	pds := ident.PDSEndpoint()
	if pds == "" {
		return nil, fmt.Errorf("%s has no PDS", did)
	}

	q := url.Values{"repo": {did.String()}, "collection": {"com.atproto.lexicon.schema"}, "rkey": {nsid.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(pds, "/")+"/xrpc/com.atproto.repo.getRecord?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	hc := r.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching lexicon record: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching lexicon record: HTTP %d", resp.StatusCode)
	}
	max := r.MaxSize
	if max <= 0 {
		max = defaultMaxSize
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("lexicon record larger than %d bytes", max)
	}
	var out struct {
		URI   string          `json:"uri"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Value) == 0 {
		return nil, fmt.Errorf("lexicon record response malformed")
	}
	return parsePermissionSet(nsid, out.Value)
}

// parsePermissionSet reads a com.atproto.lexicon.schema record: its id must be the NSID and its main definition
// a permission set. The set's entries are not validated here: Expand ignores entries it cannot use.
func parsePermissionSet(nsid syntax.NSID, value []byte) (*lexicon.SchemaPermissionSet, error) {
	var head struct {
		Type string `json:"$type"`
	}
	if err := json.Unmarshal(value, &head); err != nil || head.Type != "com.atproto.lexicon.schema" {
		return nil, fmt.Errorf("record is not a com.atproto.lexicon.schema")
	}
	var sf lexicon.SchemaFile
	if err := json.Unmarshal(value, &sf); err != nil {
		return nil, fmt.Errorf("lexicon record invalid: %w", err)
	}
	if sf.Lexicon != 1 || sf.ID != nsid.String() {
		return nil, fmt.Errorf("lexicon record is for %q (lexicon %d), want %s", sf.ID, sf.Lexicon, nsid)
	}
	main, ok := sf.Defs["main"]
	if !ok {
		return nil, ErrNotPermissionSet
	}
	set, ok := main.Inner.(lexicon.SchemaPermissionSet)
	if !ok || set.Type != "permission-set" {
		return nil, ErrNotPermissionSet
	}
	return &set, nil
}
