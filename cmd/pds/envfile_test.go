package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func TestParseEnvFile(t *testing.T) {
	t.Parallel()
	// What the reference installer writes, plus the variants env files have in the wild.
	in := `# pds.env
PDS_HOSTNAME=pds.example.com
PDS_JWT_SECRET=abc123
PDS_DATA_DIRECTORY=/pds

export PDS_CRAWLERS=https://bsky.network
PDS_SERVICE_NAME="My PDS \"one\""
PDS_EMAIL_FROM_ADDRESS='admin@example.com # not a comment'
PDS_CONTACT_EMAIL_ADDRESS=ops@example.com # a comment
PDS_PRIVACY_POLICY_URL=
LOG_ENABLED=true
`
	got, err := parseEnvFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PDS_HOSTNAME": "pds.example.com", "PDS_JWT_SECRET": "abc123", "PDS_DATA_DIRECTORY": "/pds",
		"PDS_CRAWLERS": "https://bsky.network", "PDS_SERVICE_NAME": `My PDS "one"`,
		"PDS_EMAIL_FROM_ADDRESS": "admin@example.com # not a comment", "PDS_CONTACT_EMAIL_ADDRESS": "ops@example.com",
		"PDS_PRIVACY_POLICY_URL": "", "LOG_ENABLED": "true",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	for _, bad := range []string{"NOEQUALS\n", "1BAD=x\n", "A=\"open\n", "A B=c\n"} {
		if _, err := parseEnvFile(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestEnvFilePrecedence: the environment wins over the file (even a variable set to ""), the file fills in the
// rest; --env-file and PDS_ENV_FILE both work. Run against the binary.
func TestEnvFilePrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	file := filepath.Join(dir, "pds.env")
	os.WriteFile(file, []byte(fmt.Sprintf(`PDS_PORT=1
PDS_DATA_DIRECTORY=%s
PDS_INVITE_REQUIRED=true
PDS_CRAWLERS=https://relay.example.com
PDS_EMBEDDED_PLC_ADDR=127.0.0.1:0
PDS_SERVICE_HANDLE_DOMAINS=.from-file.test
`, filepath.Join(dir, "data"))), 0o600)

	check := func(srv *runningBinary, wantDomain, wantData string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/xrpc/com.atproto.server.describeServer")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d struct {
			InviteCodeRequired   bool     `json:"inviteCodeRequired"`
			AvailableUserDomains []string `json:"availableUserDomains"`
		}
		json.NewDecoder(resp.Body).Decode(&d)
		if !d.InviteCodeRequired || len(d.AvailableUserDomains) != 1 || d.AvailableUserDomains[0] != wantDomain {
			t.Fatalf("describeServer: %+v", d)
		}
		if _, err := os.Stat(filepath.Join(dir, wantData, "secrets.json")); err != nil {
			t.Fatal("data directory not used:", err)
		}
		if !strings.Contains(srv.Log(), "crawlers=off") {
			t.Fatalf("PDS_CRAWLERS= in the environment should win over the file:\n%s", srv.Log())
		}
	}
	// PDS_PORT (file: 1) and PDS_CRAWLERS (file: a relay; environment: empty) come from the environment.
	srv := startBinary(t, map[string]string{"PDS_PORT": fmt.Sprint(port), "PDS_CRAWLERS": ""}, "--env-file", file)
	check(srv, ".from-file.test", "data")
	if !strings.Contains(srv.Log(), "env file") {
		t.Fatalf("start-up log does not name the env file:\n%s", srv.Log())
	}

	port2 := freePort(t)
	srv2 := startBinary(t, map[string]string{"PDS_PORT": fmt.Sprint(port2), "PDS_CRAWLERS": "", "PDS_ENV_FILE": file,
		"PDS_SERVICE_HANDLE_DOMAINS": ".from-env.test", "PDS_DATA_DIRECTORY": filepath.Join(dir, "data2")})
	check(srv2, ".from-env.test", "data2")
}

// TestEnvFileForOperatorCommands: `PDS_ENV_FILE=/etc/pds/pds.env pds account list` finds the admin password
// and server there, as docs/deploy.md says.
func TestEnvFileForOperatorCommands(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	file := filepath.Join(t.TempDir(), "pds.env")
	os.WriteFile(file, []byte("PDS_ADMIN_SERVER_URL="+p.URL+"\nPDS_ADMIN_PASSWORD=admin-pass\n"), 0o600)
	mustCLI(t, map[string]string{"PDS_ENV_FILE": file}, "account", "list")
	// The environment still wins: a wrong password there is used, and refused.
	if _, errOut, code := pdsCLI(t, map[string]string{"PDS_ENV_FILE": file, "PDS_ADMIN_PASSWORD": "wrong"}, "", "account", "list"); code != 1 || !strings.Contains(errOut, "AuthenticationRequired") {
		t.Fatalf("environment over file: exit %d %q", code, errOut)
	}
	if _, errOut, code := pdsCLI(t, map[string]string{"PDS_ENV_FILE": file + ".missing"}, "", "account", "list"); code != 1 || !strings.Contains(errOut, "env file") {
		t.Fatalf("missing env file: exit %d %q", code, errOut)
	}
}
