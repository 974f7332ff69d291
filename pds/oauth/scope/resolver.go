package scope

import (
	"bytes"
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

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lru "github.com/hashicorp/golang-lru/v2"
	car "github.com/ipld/go-car"
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

var (
	// ErrNotPermissionSet: the NSID resolved to a Lexicon whose main definition is not a permission set.
	ErrNotPermissionSet = errors.New("lexicon is not a permission set")
	// ErrBadProof: the record proof the PDS returned does not check out.
	ErrBadProof = errors.New("lexicon record proof invalid")
)

// LexiconResolver resolves permission sets through atproto Lexicon resolution: the NSID's authority domain
// answers a DNS TXT query for _lexicon.<authority> with did=<DID>; that DID's PDS serves the schema as the
// com.atproto.lexicon.schema record whose key is the NSID. Results are cached as the permission spec asks.
// Configure before first use; Resolve is safe for concurrent use.
//
// The record is read with com.atproto.sync.getRecord and authenticated like @atproto/lexicon-resolver does:
// signed commit, MST path, record block (indigo's own resolver reads repo.getRecord without checks).
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

	pub, err := ident.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%s has no atproto signing key: %w", did, err)
	}
	value, err := r.fetchVerifiedRecord(ctx, pds, did, pub, nsid)
	if err != nil {
		return nil, err
	}
	return parsePermissionSet(nsid, value)
}

// fetchVerifiedRecord fetches com.atproto.sync.getRecord for the schema record and checks the proof as
// @atproto/lexicon-resolver does: every block matches its CID, the root commit is the DID's and signed by its
// atproto key, and the commit's MST maps com.atproto.lexicon.schema/<nsid> to the record block. It returns the
// record as JSON.
func (r *LexiconResolver) fetchVerifiedRecord(ctx context.Context, pds string, did syntax.DID, pub atcrypto.PublicKey, nsid syntax.NSID) ([]byte, error) {
	q := url.Values{"did": {did.String()}, "collection": {schemaCollection}, "rkey": {nsid.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(pds, "/")+"/xrpc/com.atproto.sync.getRecord?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.ipld.car")
	hc := r.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching lexicon record proof: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching lexicon record proof: HTTP %d", resp.StatusCode)
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
		return nil, fmt.Errorf("lexicon record proof larger than %d bytes", max)
	}

	cr, err := car.NewCarReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	if len(cr.Header.Roots) != 1 {
		return nil, fmt.Errorf("%w: want one root", ErrBadProof)
	}
	bs := atrepo.NewTinyBlockstore()
	for {
		blk, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadProof, err)
		}
		// go-car's reader checks this too; kept so the guarantee does not rest on the reader version.
		if sum, err := blk.Cid().Prefix().Sum(blk.RawData()); err != nil || !sum.Equals(blk.Cid()) {
			return nil, fmt.Errorf("%w: block %s does not match its CID", ErrBadProof, blk.Cid())
		}
		bs.Put(ctx, blk)
	}
	cblk, err := bs.Get(ctx, cr.Header.Roots[0])
	if err != nil {
		return nil, fmt.Errorf("%w: no commit block", ErrBadProof)
	}
	var commit atrepo.Commit
	if err := commit.UnmarshalCBOR(bytes.NewReader(cblk.RawData())); err != nil {
		return nil, fmt.Errorf("%w: commit: %v", ErrBadProof, err)
	}
	if err := commit.VerifyStructure(); err != nil {
		return nil, fmt.Errorf("%w: commit: %v", ErrBadProof, err)
	}
	if commit.DID != did.String() {
		return nil, fmt.Errorf("%w: commit is for %s, not %s", ErrBadProof, commit.DID, did)
	}
	if err := commit.VerifySignature(pub); err != nil {
		return nil, fmt.Errorf("%w: commit signature: %v", ErrBadProof, err)
	}
	tree, err := mst.LoadTreeFromStore(ctx, bs, commit.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: MST: %v", ErrBadProof, err)
	}
	rc, err := tree.Get([]byte(schemaCollection + "/" + nsid.String()))
	if err != nil || rc == nil {
		return nil, fmt.Errorf("%w: record not in the proof", ErrBadProof)
	}
	rblk, err := bs.Get(ctx, *rc)
	if err != nil {
		return nil, fmt.Errorf("%w: record block missing", ErrBadProof)
	}
	rec, err := atdata.UnmarshalCBOR(rblk.RawData())
	if err != nil {
		return nil, fmt.Errorf("lexicon record: %w", err)
	}
	return json.Marshal(rec)
}

const schemaCollection = "com.atproto.lexicon.schema"

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
