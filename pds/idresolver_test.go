package pds

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/ssrf"
)

// The identity transport must refuse loopback (and other private) targets unless SSRF protection is off, while
// the configured PLC directory stays reachable; bodies are bounded.
func TestIdentityTransportSSRF(t *testing.T) {
	small := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
	}))
	defer small.Close()
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", maxIdentityResponse+10)))
	}))
	defer big.Close()

	get := func(rt http.RoundTripper, url string) (string, error) {
		c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	protected := newIdentityTransport(&Config{PLCURL: big.URL}, time.Second)
	if _, err := get(protected, small.URL+"/.well-known/atproto-did"); !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("protected transport reached loopback: %v", err)
	}
	// The PLC directory is trusted (and here too large: the body limit applies to it as well).
	if _, err := get(protected, big.URL+"/did:plc:x"); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("PLC request: want the size limit error, got %v", err)
	}

	open := newIdentityTransport(&Config{PLCURL: "https://plc.directory", DisableSSRFProtection: true}, time.Second)
	body, err := get(open, small.URL+"/.well-known/atproto-did")
	if err != nil || body != "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("unprotected transport: %q %v", body, err)
	}
	if _, err := get(open, big.URL+"/.well-known/did.json"); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("oversized body: want %v, got %v", errResponseTooLarge, err)
	}
}

func TestIdentityResolutionConfig(t *testing.T) {
	env := func(m map[string]string) Getenv { return func(k string) string { return m[k] } }
	c := &Config{}
	if err := c.loadIdentityResolution(env(nil)); err != nil {
		t.Fatal(err)
	}
	if c.DisableSSRFProtection || c.IDResolverTimeout != 3*time.Second || c.HandleDNSServer != "" {
		t.Fatalf("defaults: %+v", c)
	}
	c = &Config{DevMode: true}
	if err := c.loadIdentityResolution(env(map[string]string{
		"PDS_HANDLE_DNS_SERVER":         "127.0.0.1:5353",
		"PDS_HANDLE_BACKUP_NAMESERVERS": "1.1.1.1, [2001:db8::1]:53,ns.example.com",
		"PDS_ID_RESOLVER_TIMEOUT":       "1500",
	})); err != nil {
		t.Fatal(err)
	}
	if !c.DisableSSRFProtection || c.HandleDNSServer != "127.0.0.1:5353" || c.IDResolverTimeout != 1500*time.Millisecond {
		t.Fatalf("parsed: %+v", c)
	}
	want := []string{"1.1.1.1:53", "[2001:db8::1]:53", "ns.example.com:53"}
	if strings.Join(c.HandleBackupNameservers, " ") != strings.Join(want, " ") {
		t.Fatalf("backup nameservers %v, want %v", c.HandleBackupNameservers, want)
	}
	for _, bad := range []map[string]string{
		{"PDS_ID_RESOLVER_TIMEOUT": "0"},
		{"PDS_DISABLE_SSRF_PROTECTION": "maybe"},
		{"PDS_HANDLE_DNS_SERVER": "a:b:c"},
	} {
		if err := (&Config{}).loadIdentityResolution(env(bad)); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
