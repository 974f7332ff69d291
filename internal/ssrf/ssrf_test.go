package ssrf_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/ssrf"
)

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8":              true,
		"1.1.1.1":              true,
		"2606:4700::1111":      true,
		"127.0.0.1":            false,
		"127.255.0.9":          false,
		"10.1.2.3":             false,
		"172.16.0.1":           false,
		"172.31.255.255":       false,
		"172.32.0.1":           true,
		"192.168.1.1":          false,
		"169.254.169.254":      false, // cloud metadata
		"100.64.0.1":           false,
		"0.0.0.0":              false,
		"0.1.2.3":              false,
		"224.0.0.1":            false,
		"255.255.255.255":      false,
		"198.18.0.1":           false,
		"192.0.2.5":            false,
		"::1":                  false,
		"::":                   false,
		"fe80::1":              false,
		"fc00::1":              false,
		"fd12:3456::1":         false,
		"ff02::1":              false,
		"::ffff:127.0.0.1":     false, // IPv4-mapped loopback
		"::ffff:10.0.0.1":      false,
		"::ffff:8.8.8.8":       true,
		"64:ff9b::a00:1":       false, // NAT64 of 10.0.0.1: outside 2000::/3
		"2002:7f00:1::1":       false, // 6to4 of 127.0.0.1
		"2001:0:4136:e378::1":  false, // Teredo
		"2001:db8::1":          false,
		"2a00:1450:4001::200e": true,
	} {
		if got := ssrf.IsPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestTransportRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()

	guarded := ssrf.NewClient(false, 5*time.Second)
	_, err := guarded.Get(srv.URL)
	if !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("guarded client reached loopback: err=%v", err)
	}
	// A host name that resolves to loopback is refused too (checked after resolution).
	_, err = guarded.Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	if !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("guarded client reached localhost: err=%v", err)
	}

	// The operator's configured host:port is allowed, and only that one.
	allowed := ssrf.NewClient(false, 5*time.Second, ssrf.HostPort(srv.URL))
	resp, err := allowed.Get(srv.URL)
	if err != nil {
		t.Fatalf("allow-listed host: %v", err)
	}
	resp.Body.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	if _, err := allowed.Get(other.URL); !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("allow list leaked to another port: %v", err)
	}

	// Protection off (tests, development): loopback is reachable.
	open := ssrf.NewClient(true, 5*time.Second)
	resp, err = open.Get(srv.URL)
	if err != nil {
		t.Fatalf("unguarded client: %v", err)
	}
	resp.Body.Close()
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://example.com":           true,
		"https://example.com:8443/x":    true,
		"http://example.com":            false,
		"https://127.0.0.1":             false,
		"https://[::1]:443":             false,
		"https://10.0.0.1":              false,
		"https://8.8.8.8":               true,
		"https://user:pw@example.com":   false,
		"ftp://example.com":             false,
		"example.com":                   false,
		"https://[::ffff:169.254.1.1]/": false,
	} {
		err := ssrf.CheckURL(u, false)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", u, err, ok)
		}
		if err != nil && !errors.Is(err, ssrf.ErrForbidden) {
			t.Errorf("CheckURL(%q) error does not wrap ErrForbidden: %v", u, err)
		}
	}
	if err := ssrf.CheckURL("http://example.com", true); err != nil {
		t.Errorf("http allowed: %v", err)
	}
	if got := ssrf.HostPort("https://Example.com/path"); got != "Example.com:443" {
		t.Errorf("HostPort = %q", got)
	}
	if got := ssrf.HostPort("http://127.0.0.1:2582"); got != "127.0.0.1:2582" {
		t.Errorf("HostPort = %q", got)
	}
}
