package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pdsgo/pds/internal/ssrf"
)

// fakeDNS answers A queries for example.com names with 127.0.0.1 over a real UDP socket on loopback: the world
// where a client_id host points at a private address.
func fakeDNS(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA && strings.HasSuffix(strings.ToLower(q.Name), "example.com.") {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("127.0.0.1")})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// guardedClient is the server's outbound client (internal/ssrf's dial func, allowPrivate as given) with host
// names looked up through res, and the test server's certificate trusted. Only the port differs from the real
// address: the fake DNS says 127.0.0.1, the port is the test server's.
func guardedClient(t *testing.T, w *web, res *net.Resolver, allowPrivate bool) *http.Client {
	dial := ssrf.DialContext(allowPrivate)
	_, port, _ := net.SplitHostPort(w.srv.Listener.Addr().String())
	tr := ssrf.NewTransport(allowPrivate)
	tr.TLSClientConfig = &tls.Config{RootCAs: w.roots}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := res.LookupHost(ctx, host)
		if err != nil {
			return nil, err
		}
		return dial(ctx, network, net.JoinHostPort(ips[0], port))
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func TestSSRFGuardRefusesPrivateAddress(t *testing.T) {
	w := startWeb(t)
	w.setJSON(appID, mustJSON(t, publicMeta(t)))
	res := fakeDNS(t)

	// Control: the same path with private addresses allowed reaches the document.
	open := NewResolver(guardedClient(t, w, res, true))
	if _, err := open.Resolve(context.Background(), appID); err != nil {
		t.Fatalf("control: %v", err)
	}
	before := w.count(appID)

	guarded := NewResolver(guardedClient(t, w, res, false))
	_, err := guarded.Resolve(context.Background(), appID)
	if !errors.Is(err, ErrInvalidClientMetadata) || !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("got %v, want ErrInvalidClientMetadata wrapping ssrf.ErrForbidden", err)
	}
	if w.count(appID) != before {
		t.Fatal("the guarded client reached the server")
	}

	// The plain production client, asked for a private IP literal (here a jwks_uri), is refused too.
	hc := ssrf.NewClient(false, 5*time.Second)
	r := NewResolver(hc)
	if _, _, err := r.fetchJSON(context.Background(), "https://"+w.srv.Listener.Addr().String()+"/jwks.json", "application/json"); !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("production client to %s: %v", w.srv.Listener.Addr(), err)
	}
}
