package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestBehindCaddy runs the shipped deploy/Caddyfile (Caddy from Debian's caddy package) in front of the
// binary, with Pebble as the ACME CA: Caddy's on_demand_tls asks the PDS's /tls-check and gets certificates
// for the hostname and a hosted handle only; requests, and the subscribeRepos websocket, pass through.
// The Caddyfile is used as shipped but for the upstream (pds:2583 is the compose service) and the test's
// ports, CA and storage, added to its global options.
var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestBehindCaddy(t *testing.T) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("caddy is not installed (Debian: apt-get install caddy; .ci/run installs it)")
	}
	httpsPort, httpPort := freePort(t), freePort(t)
	acme := startPebble(t, httpPort, httpsPort)

	port := freePort(t)
	srv := startBinary(t, map[string]string{
		"PDS_HOSTNAME": "pds.example.com", "PDS_PORT": fmt.Sprint(port), "PDS_BIND_ADDRESS": "127.0.0.1",
		"PDS_DATA_DIRECTORY": t.TempDir(), "PDS_DID_PLC_URL": "embedded", "PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0",
		"PDS_INVITE_REQUIRED": "false", "PDS_CRAWLERS": "none", "PDS_BSKY_APP_VIEW_URL": "none", "PDS_REPORT_SERVICE_URL": "none",
	})
	resp, err := http.Post(srv.URL+"/xrpc/com.atproto.server.createAccount", "application/json",
		strings.NewReader(`{"handle":"alice.pds.example.com","email":"alice@example.com","password":"hunter2"}`))
	if err != nil {
		t.Fatal(err)
	}
	var acct struct{ DID string }
	json.NewDecoder(resp.Body).Decode(&acct)
	resp.Body.Close()
	if acct.DID == "" {
		t.Fatalf("createAccount: %d", resp.StatusCode)
	}

	shipped, err := os.ReadFile("../../deploy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := string(shipped)
	if strings.Count(conf, "reverse_proxy pds:2583") != 1 || !strings.Contains(conf, "ask http://pds:2583/tls-check") || !strings.Contains(conf, "on_demand_tls {") {
		t.Fatalf("deploy/Caddyfile changed shape:\n%s", conf)
	}
	conf = strings.ReplaceAll(conf, "pds:2583", fmt.Sprintf("127.0.0.1:%d", port))
	conf = strings.Replace(conf, "\ton_demand_tls {", fmt.Sprintf("\thttp_port %d\n\thttps_port %d\n\tacme_ca %s/dir\n\tacme_ca_root %s\n\tstorage file_system %s\n\tadmin off\n\ton_demand_tls {",
		httpPort, httpsPort, acme.srv.URL, acme.caFile, filepath.Join(dir, "storage")), 1)
	confFile := filepath.Join(dir, "Caddyfile")
	os.WriteFile(confFile, []byte(conf), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, caddy, "run", "--config", confFile, "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
		"PDS_HOSTNAME=pds.example.com", "PDS_ADMIN_EMAIL=ops@example.com"}
	caddyLog := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = caddyLog, caddyLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	httpsAddr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("tcp", httpsAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start:\n%s", caddyLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	roots := x509.NewCertPool()
	roots.AddCert(acme.authority.GetRootCert(0).Cert)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", httpsAddr)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: dial}}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\ncaddy:\n%s\npebble:\n%s", url, err, caddyLog.String(), acme.log.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("https://pds.example.com/xrpc/_health"); status != 200 || !strings.Contains(body, "version") {
		t.Fatalf("hostname through caddy: %d %s", status, body)
	}
	if status, body := get("https://alice.pds.example.com/.well-known/atproto-did"); status != 200 || strings.TrimSpace(body) != acct.DID {
		t.Fatalf("handle through caddy: %d %q", status, body)
	}
	for _, name := range []string{"bob.pds.example.com", "other.pds.example.com"} {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: name, RootCAs: roots})
		if err == nil {
			conn.Close()
			t.Fatalf("caddy got a certificate for %s, which the PDS does not host", name)
		}
		if acme.names.wasAsked(name) {
			t.Fatalf("Pebble was asked to validate %s", name)
		}
	}
	// Caddy sets the request ID (replacing the client's), and the PDS, behind a trusted proxy, keeps it.
	req, _ := http.NewRequest("GET", "https://pds.example.com/xrpc/_health", nil)
	req.Header.Set("X-Request-Id", "client-chosen")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); !uuidPattern.MatchString(id) {
		t.Fatalf("X-Request-Id through caddy: %q, want the UUID Caddy set", id)
	}
	// The firehose websocket passes through: the account's creation is on it.
	ws := websocket.Dialer{NetDialContext: dial, TLSClientConfig: &tls.Config{RootCAs: roots}, HandshakeTimeout: 30 * time.Second}
	c, _, err := ws.Dial("wss://pds.example.com/xrpc/com.atproto.sync.subscribeRepos?cursor=0", nil)
	if err != nil {
		t.Fatalf("subscribeRepos through caddy: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, frame, err := c.ReadMessage(); err != nil || len(frame) == 0 {
		t.Fatalf("no firehose frame through caddy: %v", err)
	}
}
