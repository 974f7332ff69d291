package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// web is a real HTTPS server on loopback standing in for the client apps' sites under example.com. The test
// HTTP clients route every *.example.com:443 connection to it; its certificate is made here and trusted by them.
type web struct {
	srv   *httptest.Server
	roots *x509.CertPool

	mu    sync.Mutex
	docs  map[string]doc // host+path -> response
	fetch map[string]int // host+path -> GET count
}

type doc struct {
	status int
	ctype  string
	body   string
	header map[string]string
	delay  time.Duration
}

func startWeb(t *testing.T) *web {
	t.Helper()
	w := &web{docs: map[string]doc{}, fetch: map[string]int{}}
	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	cert, roots := selfSigned(t, "example.com", "*.example.com")
	w.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	w.roots = roots
	w.srv.StartTLS()
	t.Cleanup(w.srv.Close)
	return w
}

func (w *web) serve(rw http.ResponseWriter, r *http.Request) {
	key := strings.Split(r.Host, ":")[0] + r.URL.Path
	w.mu.Lock()
	d, ok := w.docs[key]
	w.fetch[key]++
	w.mu.Unlock()
	if !ok {
		http.NotFound(rw, r)
		return
	}
	if d.delay > 0 {
		select {
		case <-time.After(d.delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range d.header {
		rw.Header().Set(k, v)
	}
	if d.ctype != "" {
		rw.Header().Set("Content-Type", d.ctype)
	}
	if d.status == 0 {
		d.status = 200
	}
	rw.WriteHeader(d.status)
	rw.Write([]byte(d.body))
}

func (w *web) set(url string, d doc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.docs[strings.TrimPrefix(url, "https://")] = d
}

func (w *web) setJSON(url, body string) { w.set(url, doc{ctype: "application/json", body: body}) }

func (w *web) count(url string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fetch[strings.TrimPrefix(url, "https://")]
}

// client is an HTTP client that trusts the test certificate and dials the test server for *.example.com.
func (w *web) client() *http.Client {
	addr := w.srv.Listener.Addr().String()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.roots},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(a)
			if host != "example.com" && !strings.HasSuffix(host, ".example.com") {
				return nil, &net.DNSError{Err: "no such host (test)", Name: host, IsNotFound: true}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
