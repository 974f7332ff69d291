package main

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/pdsgo/pds/internal/testpds"
)

// TestDoctor runs `pds doctor` against a loopback setup of a server on a real name: DNS from a loopback DNS
// server, the PDS over HTTPS, a PLC directory, an AppView and a relay on loopback; the SMTP server is
// unreachable, and that is the one failing check.
func TestDoctor(t *testing.T) {
	t.Parallel()
	names := &loopbackDNS{asked: map[string]bool{}}
	dnsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{Listener: dnsLn, Handler: names}
	go dnsSrv.ActivateAndServe()
	defer dnsSrv.Shutdown()

	p := testpds.Start(t, testpds.Options{})
	public := httptest.NewTLSServer(p.Server.Handler()) // its certificate is for example.com and *.example.com
	defer public.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: public.Certificate().Raw}), 0o600)
	u, _ := url.Parse(public.URL)

	network := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/xrpc/_health" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"version":"x"}`))
	}))
	defer network.Close()
	closed := freePort(t) // nothing listens here

	data := t.TempDir()
	os.Chmod(data, 0o700)
	os.WriteFile(filepath.Join(data, "secrets.json"), []byte(`{}`), 0o600)
	env := map[string]string{
		"PDS_HOSTNAME": "example.com", "PDS_DATA_DIRECTORY": data, "PDS_DID_PLC_URL": p.PLCURL,
		"PDS_BSKY_APP_VIEW_URL": network.URL, "PDS_BSKY_APP_VIEW_DID": "did:web:appview.example.com",
		"PDS_REPORT_SERVICE_URL": "none", "PDS_CRAWLERS": network.URL,
		"PDS_EMAIL_SMTP_URL": fmt.Sprintf("smtp://user:pass@127.0.0.1:%d", closed), "PDS_EMAIL_FROM_ADDRESS": "pds@example.com",
	}
	args := []string{"doctor", "--dns-server", dnsLn.Addr().String(), "--https-port", u.Port(), "--ca-certs", caFile, "--timeout", "5s"}
	out, errOut, code := pdsCLI(t, env, "", args...)
	if code != 1 || !strings.Contains(errOut, "1 check(s) failed") {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	status := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(ok|warn|FAIL|skip) +(\S+(?: \S+)?) {2,}`).FindAllStringSubmatch(out, -1) {
		status[m[2]] = m[1]
	}
	want := map[string]string{"configuration": "ok", "dns hostname": "ok", "dns handles": "ok", "https": "ok",
		"plc directory": "ok", "appview": "ok", "report service": "skip", "crawler": "ok", "smtp": "FAIL",
		"data directory": "ok"}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %q, want %q\n%s", k, status[k], v, out)
		}
	}
	if !names.wasAsked("example.com") || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("DNS not asked:\n%s", out)
	}
	// Fixed: without SMTP it is a warning, and the checklist passes. A secrets.json others can read fails.
	env["PDS_EMAIL_SMTP_URL"] = ""
	if out, errOut, code := pdsCLI(t, env, "", args...); code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("without SMTP: exit %d %q\n%s", code, errOut, out)
	}
	os.Chmod(filepath.Join(data, "secrets.json"), 0o644)
	if out, _, code := pdsCLI(t, env, "", args...); code != 1 || !regexp.MustCompile(`FAIL +data directory +secrets.json`).MatchString(out) {
		t.Fatalf("readable secrets.json: exit %d\n%s", code, out)
	}
	// The HTTPS check fails against a certificate not for the name (no --ca-certs: the test CA is unknown).
	if out, _, code := pdsCLI(t, env, "", args[:len(args)-4]...); code != 1 || !regexp.MustCompile(`FAIL +https +.*certificate`).MatchString(out) {
		t.Fatalf("untrusted certificate: exit %d\n%s", code, out)
	}
}
