package accounts

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

	protected := newIdentityTransport(IdentityConfig{PLCURL: big.URL}, time.Second)
	if _, err := get(protected, small.URL+"/.well-known/atproto-did"); !errors.Is(err, ssrf.ErrForbidden) {
		t.Fatalf("protected transport reached loopback: %v", err)
	}
	// The PLC directory is trusted (and here too large: the body limit applies to it as well).
	if _, err := get(protected, big.URL+"/did:plc:x"); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("PLC request: want the size limit error, got %v", err)
	}

	open := newIdentityTransport(IdentityConfig{PLCURL: "https://plc.directory", DisableSSRFProtection: true}, time.Second)
	body, err := get(open, small.URL+"/.well-known/atproto-did")
	if err != nil || body != "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("unprotected transport: %q %v", body, err)
	}
	if _, err := get(open, big.URL+"/.well-known/did.json"); !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("oversized body: want %v, got %v", errResponseTooLarge, err)
	}
}
