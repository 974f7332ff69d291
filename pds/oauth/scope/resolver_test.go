package scope

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/miekg/dns"

	pdsrepo "github.com/pdsgo/pds/repo"
)

// lexWorld is the outside world of Lexicon resolution, on loopback: a DNS server on a real UDP socket answers
// _lexicon TXT queries, and one HTTPS server plays both the did:web host (/.well-known/did.json) and the PDS
// (com.atproto.repo.getRecord). Test HTTP clients route *.example.com to it and trust its certificate.
type lexWorld struct {
	dnsAddr string
	srv     *httptest.Server
	roots   *x509.CertPool

	// The schema records live in a real repository (this project's repo store), signed with key; the PDS
	// serves sync.getRecord proofs of it.
	store *pdsrepo.Store
	key   atcrypto.PrivateKey

	mu        sync.Mutex
	txt       map[string]string // "_lexicon.<authority>." -> TXT value
	fail      bool              // PDS answers 500
	docKey    string            // publicKeyMultibase in the DID document
	tamper    bool              // flip the proof's last byte (the record block)
	otherRepo *pdsrepo.Store    // serve the proof from this store instead (another DID's repository)
	fetches   int
}

const (
	lexDID  = "did:web:lex.example.com"
	pdsHost = "pds.example.com"
)

func startLexWorld(t *testing.T) *lexWorld {
	t.Helper()
	w := &lexWorld{txt: map[string]string{}}
	w.store, w.key = newLexRepo(t, lexDID)
	pub, _ := w.key.PublicKey()
	w.docKey = pub.Multibase()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(w.serveDNS)}
	go ds.ActivateAndServe()
	t.Cleanup(func() { ds.Shutdown() })
	w.dnsAddr = pc.LocalAddr().String()

	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(w.serveHTTP))
	cert, roots := selfSigned(t, "*.example.com")
	w.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	w.roots = roots
	w.srv.StartTLS()
	t.Cleanup(w.srv.Close)
	return w
}

func (w *lexWorld) serveDNS(rw dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	w.mu.Lock()
	for _, q := range r.Question {
		if v, ok := w.txt[strings.ToLower(q.Name)]; ok && q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
		}
	}
	w.mu.Unlock()
	if len(m.Answer) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	rw.WriteMsg(m)
}

func (w *lexWorld) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	host := strings.Split(r.Host, ":")[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case host == "lex.example.com" && r.URL.Path == "/.well-known/did.json":
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]any{
			"@context":           []string{"https://www.w3.org/ns/did/v1"},
			"id":                 lexDID,
			"service":            []map[string]any{{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://" + pdsHost}},
			"verificationMethod": []map[string]any{{"id": lexDID + "#atproto", "type": "Multikey", "controller": lexDID, "publicKeyMultibase": w.docKey}},
		})
	case host == pdsHost && r.URL.Path == "/xrpc/com.atproto.sync.getRecord":
		w.fetches++
		q := r.URL.Query()
		if w.fail {
			http.Error(rw, `{"error":"InternalServerError"}`, 500)
			return
		}
		store, did := w.store, syntax.DID(lexDID)
		if w.otherRepo != nil {
			store, did = w.otherRepo, otherDID
		}
		if q.Get("did") != lexDID {
			http.Error(rw, `{"error":"RepoNotFound"}`, 400)
			return
		}
		var buf bytes.Buffer
		err := store.With(r.Context(), did, func(rp *pdsrepo.Repo) error {
			return rp.WriteRecordProof(r.Context(), &buf, q.Get("collection"), q.Get("rkey"))
		})
		if err != nil {
			http.Error(rw, err.Error(), 500)
			return
		}
		b := buf.Bytes()
		if w.tamper {
			b[len(b)-1] ^= 0x01
		}
		rw.Header().Set("Content-Type", "application/vnd.ipld.car")
		rw.Write(b)
	default:
		http.NotFound(rw, r)
	}
}

func (w *lexWorld) client() *http.Client {
	addr := w.srv.Listener.Addr().String()
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.roots},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(a)
			if !strings.HasSuffix(host, ".example.com") {
				return nil, &net.DNSError{Err: "no such host (test)", Name: host, IsNotFound: true}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (w *lexWorld) resolver() *LexiconResolver {
	hc := w.client()
	r := NewLexiconResolver(&identity.BaseDirectory{HTTPClient: *hc}, hc)
	r.DNSServer = w.dnsAddr
	return r
}

const otherDID = "did:web:other.example.com"

func newLexRepo(t *testing.T, did string) (*pdsrepo.Store, atcrypto.PrivateKey) {
	t.Helper()
	s, err := pdsrepo.OpenStore(t.TempDir(), pdsrepo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), syntax.DID(did), key); err != nil {
		t.Fatal(err)
	}
	return s, key
}

// put writes a com.atproto.lexicon.schema record (key: the NSID) into a repository.
func put(t *testing.T, s *pdsrepo.Store, did string, key atcrypto.PrivateKey, nsid string, value any) {
	t.Helper()
	j, _ := json.Marshal(value)
	data, err := atdata.UnmarshalJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := atdata.MarshalCBOR(data)
	if err != nil {
		t.Fatal(err)
	}
	err = s.With(context.Background(), syntax.DID(did), func(r *pdsrepo.Repo) error {
		_, err := r.Apply(context.Background(), pdsrepo.WriteRequest{Signer: key, Ops: []pdsrepo.WriteOp{{
			Action: pdsrepo.ActionUpdate, Collection: "com.atproto.lexicon.schema", RKey: syntax.RecordKey(nsid), Record: rec,
		}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *lexWorld) publish(t *testing.T, nsid string, value any) {
	put(t, w.store, lexDID, w.key, nsid, value)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.txt["_lexicon."+syntax.NSID(nsid).Authority()+"."] = "did=" + lexDID
}

func setRecord(nsid string) map[string]any {
	return map[string]any{
		"$type":   "com.atproto.lexicon.schema",
		"lexicon": 1,
		"id":      nsid,
		"defs": map[string]any{"main": map[string]any{
			"type":   "permission-set",
			"title":  "Basic App Functionality",
			"detail": "Creation of posts and interactions",
			"permissions": []any{
				map[string]any{"type": "permission", "resource": "repo", "collection": []string{"app.example.post"}},
				map[string]any{"type": "permission", "resource": "rpc", "lxm": []string{"app.example.getFeed"}, "inheritAud": true},
				map[string]any{"type": "permission", "resource": "repo", "collection": []string{"app.other.post"}},
			},
		}},
	}
}

func TestLexiconResolver(t *testing.T) {
	w := startLexWorld(t)
	w.publish(t, "app.example.authFull", setRecord("app.example.authFull"))
	r := w.resolver()
	clk := time.Now()
	r.Now = func() time.Time { return clk }

	set, err := r.Resolve(context.Background(), "app.example.authFull")
	if err != nil {
		t.Fatal(err)
	}
	if *set.Title != "Basic App Functionality" || len(set.Permissions) != 3 {
		t.Fatalf("set %+v", set)
	}

	// End to end: a granted scope expands through the network resolver.
	s := mustParse(t, "atproto include:app.example.authFull?aud=did:web:api.example.com%23svc")
	if err := s.Expand(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !s.AllowsRepo("app.example.post", ActionCreate) || !s.AllowsRPC("app.example.getFeed", "did:web:api.example.com#svc") ||
		s.AllowsRepo("app.other.post", ActionCreate) {
		t.Fatal("expanded permissions wrong")
	}
	if w.fetches != 1 {
		t.Fatalf("fetches %d, want 1 (the second resolution is cached)", w.fetches)
	}

	// Stale: re-resolved. A failing PDS then keeps the stale copy until it expires.
	clk = clk.Add(DefaultStaleAfter + time.Minute)
	if _, err := r.Resolve(context.Background(), "app.example.authFull"); err != nil || w.fetches != 2 {
		t.Fatalf("stale refresh: err %v, fetches %d", err, w.fetches)
	}
	w.mu.Lock()
	w.fail = true
	w.mu.Unlock()
	clk = clk.Add(DefaultStaleAfter + time.Minute)
	if got, err := r.Resolve(context.Background(), "app.example.authFull"); err != nil || got == nil || w.fetches != 3 {
		t.Fatalf("stale copy on failure: %v (fetches %d)", err, w.fetches)
	}
	clk = clk.Add(DefaultExpireAfter)
	if _, err := r.Resolve(context.Background(), "app.example.authFull"); err == nil {
		t.Fatal("expired copy served")
	}
	// Never resolved and failing: the expansion (and so the auth request) fails.
	fresh := w.resolver()
	if err := mustParse(t, "atproto include:app.example.authFull").Expand(context.Background(), fresh); err == nil {
		t.Fatal("unresolvable set expanded")
	}
}

func TestLexiconResolverRefusals(t *testing.T) {
	w := startLexWorld(t)
	w.publish(t, "app.example.authFull", setRecord("app.example.authFull"))
	if _, err := w.resolver().Resolve(context.Background(), "app.example.authFull"); err != nil {
		t.Fatalf("control: %v", err)
	}

	// The record's id names another set.
	w.publish(t, "app.example.authOther", setRecord("app.example.authFull"))
	// The main def is a record type, not a permission set.
	rec := setRecord("app.example.authRecord")
	rec["defs"] = map[string]any{"main": map[string]any{"type": "record", "key": "tid", "record": map[string]any{"type": "object", "properties": map[string]any{}}}}
	w.publish(t, "app.example.authRecord", rec)
	// Not a lexicon schema record at all.
	notLex := setRecord("app.example.authPost")
	notLex["$type"] = "app.bsky.feed.post"
	w.publish(t, "app.example.authPost", notLex)

	for nsid, want := range map[syntax.NSID]error{
		"app.example.authOther":  nil,
		"app.example.authRecord": ErrNotPermissionSet,
		"app.example.authPost":   nil,
		"com.nowhere.authFull":   identity.ErrNSIDNotFound, // no _lexicon TXT record
		"app.example.authNone":   nil,                      // DNS answers, the PDS has no such record
	} {
		_, err := w.resolver().Resolve(context.Background(), nsid)
		if err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s: got %v, want an error (%v)", nsid, err, want)
		}
	}
}

// Proofs that do not authenticate the record are refused; each case after the untouched proof passes.
func TestLexiconProofRefusals(t *testing.T) {
	w := startLexWorld(t)
	w.publish(t, "app.example.authFull", setRecord("app.example.authFull"))
	other, otherKey := newLexRepo(t, otherDID)
	put(t, other, otherDID, otherKey, "app.example.authFull", setRecord("app.example.authFull"))
	stranger, _ := atcrypto.GeneratePrivateKeyK256()
	strangerPub, _ := stranger.PublicKey()
	goodKey := w.docKey

	cases := []struct {
		name  string
		set   func()
		reset func()
	}{
		{"commit signed by a key the DID document does not declare", func() { w.docKey = strangerPub.Multibase() }, func() { w.docKey = goodKey }},
		{"record block altered", func() { w.tamper = true }, func() { w.tamper = false }},
		{"proof from another DID's repository", func() { w.otherRepo = other }, func() { w.otherRepo = nil }},
	}
	for _, c := range cases {
		if _, err := w.resolver().Resolve(context.Background(), "app.example.authFull"); err != nil {
			t.Fatalf("%s: control: %v", c.name, err)
		}
		w.mu.Lock()
		c.set()
		w.mu.Unlock()
		_, err := w.resolver().Resolve(context.Background(), "app.example.authFull")
		w.mu.Lock()
		c.reset()
		w.mu.Unlock()
		if !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: got %v, want ErrBadProof", c.name, err)
		}
	}
	// A record that is absent from the repository: the proof shows absence.
	w.mu.Lock()
	w.txt["_lexicon.example.app."] = "did=" + lexDID
	w.mu.Unlock()
	if _, err := w.resolver().Resolve(context.Background(), "app.example.authAbsent"); !errors.Is(err, ErrBadProof) {
		t.Errorf("absent record: %v", err)
	}
}

func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
