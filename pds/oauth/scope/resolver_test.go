package scope

import (
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

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/miekg/dns"
)

// lexWorld is the outside world of Lexicon resolution, on loopback: a DNS server on a real UDP socket answers
// _lexicon TXT queries, and one HTTPS server plays both the did:web host (/.well-known/did.json) and the PDS
// (com.atproto.repo.getRecord). Test HTTP clients route *.example.com to it and trust its certificate.
type lexWorld struct {
	dnsAddr string
	srv     *httptest.Server
	roots   *x509.CertPool

	mu      sync.Mutex
	txt     map[string]string          // "_lexicon.<authority>." -> TXT value
	records map[string]json.RawMessage // rkey (NSID) -> record value
	fail    bool                       // PDS answers 500
	fetches int
}

const (
	lexDID  = "did:web:lex.example.com"
	pdsHost = "pds.example.com"
)

func startLexWorld(t *testing.T) *lexWorld {
	t.Helper()
	w := &lexWorld{txt: map[string]string{}, records: map[string]json.RawMessage{}}
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
			"@context": []string{"https://www.w3.org/ns/did/v1"},
			"id":       lexDID,
			"service":  []map[string]any{{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://" + pdsHost}},
		})
	case host == pdsHost && r.URL.Path == "/xrpc/com.atproto.repo.getRecord":
		w.fetches++
		q := r.URL.Query()
		rec, ok := w.records[q.Get("rkey")]
		switch {
		case w.fail:
			http.Error(rw, `{"error":"InternalServerError"}`, 500)
		case q.Get("repo") != lexDID || q.Get("collection") != "com.atproto.lexicon.schema" || !ok:
			rw.WriteHeader(400)
			rw.Write([]byte(`{"error":"RecordNotFound"}`))
		default:
			rw.Header().Set("Content-Type", "application/json")
			json.NewEncoder(rw).Encode(map[string]any{"uri": "at://" + lexDID + "/com.atproto.lexicon.schema/" + q.Get("rkey"), "value": rec})
		}
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

func (w *lexWorld) publish(nsid string, value any) {
	b, _ := json.Marshal(value)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.records[nsid] = b
	auth := syntax.NSID(nsid).Authority()
	w.txt["_lexicon."+auth+"."] = "did=" + lexDID
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
	w.publish("app.example.authFull", setRecord("app.example.authFull"))
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
	w.publish("app.example.authFull", setRecord("app.example.authFull"))
	if _, err := w.resolver().Resolve(context.Background(), "app.example.authFull"); err != nil {
		t.Fatalf("control: %v", err)
	}

	// The record's id names another set.
	w.publish("app.example.authOther", setRecord("app.example.authFull"))
	// The main def is a record type, not a permission set.
	rec := setRecord("app.example.authRecord")
	rec["defs"] = map[string]any{"main": map[string]any{"type": "record", "key": "tid", "record": map[string]any{"type": "object", "properties": map[string]any{}}}}
	w.publish("app.example.authRecord", rec)
	// Not a lexicon schema record at all.
	notLex := setRecord("app.example.authPost")
	notLex["$type"] = "app.bsky.feed.post"
	w.publish("app.example.authPost", notLex)

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
