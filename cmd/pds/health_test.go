package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds"
)

func TestHealthAndVersion(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	if out := mustCLI(t, nil, "health", "--server", p.URL); !strings.Contains(out, "ok") || !strings.Contains(out, pds.Version) {
		t.Fatalf("health: %q", out)
	}
	// From the server's environment: PDS_PORT, and an unspecified bind address means loopback.
	u, _ := url.Parse(p.URL)
	mustCLI(t, map[string]string{"PDS_PORT": u.Port(), "PDS_BIND_ADDRESS": "0.0.0.0"}, "health")

	// A server that answers 503, and no server at all: exit 1.
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"Service Unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	if _, errOut, code := pdsCLI(t, nil, "", "health", "--server", sick.URL); code != 1 || !strings.Contains(errOut, "HTTP 503") {
		t.Fatalf("sick server: exit %d %q", code, errOut)
	}
	sick.Close()
	if _, errOut, code := pdsCLI(t, nil, "", "health", "--server", sick.URL); code != 1 || !strings.Contains(errOut, "unhealthy") {
		t.Fatalf("no server: exit %d %q", code, errOut)
	}
	if _, _, code := pdsCLI(t, nil, "", "health", "extra"); code != 2 {
		t.Fatalf("usage error: exit %d", code)
	}
	if out := mustCLI(t, nil, "version"); !strings.HasPrefix(out, "pds "+pds.Version) {
		t.Fatalf("version: %q", out)
	}
}
