package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// loopbackDNS answers every A query with 127.0.0.1 (and nothing else), over TCP as Pebble's VA asks, and
// records the names asked: the domain validation of Pebble reaches the PDS on loopback.
type loopbackDNS struct {
	mu    sync.Mutex
	asked map[string]bool
}

func (d *loopbackDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	for _, q := range r.Question {
		d.mu.Lock()
		d.asked[strings.TrimSuffix(strings.ToLower(q.Name), ".")] = true
		d.mu.Unlock()
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(127, 0, 0, 1)})
		}
	}
	w.WriteMsg(m)
}

func (d *loopbackDNS) wasAsked(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[name]
}

// TestBuiltInTLS runs the binary with PDS_TLS=auto against Let's Encrypt's Pebble ACME server, in this process
// on loopback with real domain validation (tls-alpn-01 or http-01, the names resolved by a loopback DNS
// server): certificates are issued for the hostname and a hosted handle, and refused for names the server does
// not host, whose validation is never even attempted; plain HTTP redirects to HTTPS.
func TestBuiltInTLS(t *testing.T) {
	httpsPort, httpPort := freePort(t), freePort(t)
	acme := startPebble(t, httpPort, httpsPort)
	names, authority, acmeSrv, caFile, pebbleLog := acme.names, acme.authority, acme.srv, acme.caFile, acme.log
	port := freePort(t)
	data := t.TempDir()
	srv := startBinary(t, map[string]string{
		"PDS_HOSTNAME": "pds.example.com", "PDS_PORT": fmt.Sprint(port), "PDS_DATA_DIRECTORY": data,
		"PDS_DID_PLC_URL": "embedded", "PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0", "PDS_INVITE_REQUIRED": "false",
		"PDS_CRAWLERS": "none", "PDS_BSKY_APP_VIEW_URL": "none", "PDS_REPORT_SERVICE_URL": "none",
		"PDS_TLS": "auto", "PDS_TLS_HTTPS_ADDR": fmt.Sprintf("127.0.0.1:%d", httpsPort),
		"PDS_TLS_HTTP_ADDR":      fmt.Sprintf("127.0.0.1:%d", httpPort),
		"PDS_ACME_DIRECTORY_URL": acmeSrv.URL + "/dir", "PDS_ACME_CA_CERTS": caFile, "PDS_ACME_EMAIL": "ops@example.com",
	})
	// A hosted handle, created through the plain loopback port (the admin commands' way in).
	resp, err := http.Post(srv.URL+"/xrpc/com.atproto.server.createAccount", "application/json",
		strings.NewReader(`{"handle":"alice.pds.example.com","email":"alice@example.com","password":"hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	var acct struct{ DID string }
	json.NewDecoder(resp.Body).Decode(&acct)
	resp.Body.Close()
	if resp.StatusCode != 200 || acct.DID == "" {
		t.Fatalf("createAccount: %d", resp.StatusCode)
	}

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	httpsAddr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", httpsAddr) // every name is this server
		},
	}}
	get := func(url string) (int, string, *tls.ConnectionState) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\npebble:\n%s\nserver:\n%s", url, err, pebbleLog.String(), srv.Log())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.TLS
	}
	// The hostname: a certificate from Pebble, verified against Pebble's root.
	status, body, st := get("https://pds.example.com/xrpc/_health")
	if status != 200 || !strings.Contains(body, "version") || st.PeerCertificates[0].VerifyHostname("pds.example.com") != nil {
		t.Fatalf("https hostname: %d %s", status, body)
	}
	// A hosted handle: its own certificate, and the handle's well-known answer over HTTPS.
	status, body, st = get("https://alice.pds.example.com/.well-known/atproto-did")
	if status != 200 || strings.TrimSpace(body) != acct.DID || st.PeerCertificates[0].VerifyHostname("alice.pds.example.com") != nil {
		t.Fatalf("https handle: %d %q", status, body)
	}
	if !names.wasAsked("pds.example.com") || !names.wasAsked("alice.pds.example.com") {
		t.Fatal("Pebble did not validate the names through the loopback DNS server")
	}
	// Names not hosted: no certificate, and no validation was even attempted.
	for _, name := range []string{"bob.pds.example.com", "other.example.com"} {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: name, RootCAs: roots})
		if err == nil {
			conn.Close()
			t.Fatalf("a certificate was served for %s", name)
		}
		if names.wasAsked(name) {
			t.Fatalf("Pebble was asked to validate %s", name)
		}
	}
	// Plain HTTP redirects to HTTPS.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/xrpc/_health", httpPort), nil)
	req.Host = "pds.example.com"
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "https://pds.example.com/xrpc/_health" {
		t.Fatalf("http redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Certificates are cached in the data directory (a restart does not ask again).
	for _, name := range []string{"pds.example.com", "alice.pds.example.com"} {
		if _, err := os.Stat(filepath.Join(data, "certs", name)); err != nil {
			t.Fatalf("certificate of %s not cached: %v", name, err)
		}
	}
	if !strings.Contains(srv.Log(), "certificates on demand") {
		t.Fatalf("start-up log does not mention built-in HTTPS:\n%s", srv.Log())
	}
}

// pebble is Let's Encrypt's Pebble ACME server, in this process on loopback, validating names through a
// loopback DNS server that answers 127.0.0.1 for every name: http-01 reaches httpPort, tls-alpn-01 tlsPort.
type pebble struct {
	names     *loopbackDNS
	authority *ca.CAImpl
	srv       *httptest.Server // the ACME directory is srv.URL + "/dir"
	caFile    string           // PEM of srv's own certificate, for the ACME client to trust
	log       *lockedBuffer
}

func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	// Pebble reads these when its parts are built: no random validation delays, no deliberately bad nonces.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	names := &loopbackDNS{asked: map[string]bool{}}
	dnsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{Listener: dnsLn, Handler: names}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })
	buf := &lockedBuffer{}
	logger := log.New(buf, "pebble ", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsLn.Addr().String(), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "acme-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	return &pebble{names: names, authority: authority, srv: srv, caFile: caFile, log: buf}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
