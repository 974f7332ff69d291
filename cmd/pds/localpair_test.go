package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTwoLocalServers: two local servers as the README starts them, the second sharing the first one's
// embedded PLC directory (PDS_DID_PLC_URL), move an account with `pds account export --to` and
// `pds account import`; the DID document in the embedded directory then names the second server.
func TestTwoLocalServers(t *testing.T) {
	t.Parallel()
	portA, portB := freePort(t), freePort(t)
	dataA, dataB := t.TempDir(), t.TempDir()
	a := startBinary(t, map[string]string{"PDS_PORT": fmt.Sprint(portA), "PDS_DATA_DIRECTORY": dataA, "PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`plc_directory="embedded (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(a.Log())
	if m == nil {
		t.Fatalf("no embedded directory in the log:\n%s", a.Log())
	}
	plcURL := m[1]
	b := startBinary(t, map[string]string{"PDS_PORT": fmt.Sprint(portB), "PDS_DATA_DIRECTORY": dataB, "PDS_DID_PLC_URL": plcURL})
	if !strings.Contains(b.Log(), "plc_directory="+plcURL) {
		t.Fatalf("second server does not use the first one's directory:\n%s", b.Log())
	}

	post := func(url, body, token string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("content-type", "application/json")
		if token != "" {
			req.Header.Set("authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
		}
		return out
	}
	sess := post(a.URL+"/xrpc/com.atproto.server.createAccount", `{"handle":"alice.test","email":"alice@example.com","password":"hunter2"}`, "")
	did := sess["did"].(string)
	post(a.URL+"/xrpc/com.atproto.repo.createRecord", `{"repo":"`+did+`","collection":"app.bsky.feed.post","record":{"text":"hi","createdAt":"2026-12-07T00:00:00Z"}}`, sess["accessJwt"].(string))

	// The operator commands, with each server's environment (admin passwords from the data directories).
	envA := map[string]string{"PDS_PORT": fmt.Sprint(portA), "PDS_DATA_DIRECTORY": dataA}
	envB := map[string]string{"PDS_PORT": fmt.Sprint(portB), "PDS_DATA_DIRECTORY": dataB}
	rotKey := strings.TrimSpace(mustCLI(t, envB, "plc", "rotation-key"))
	file := filepath.Join(t.TempDir(), "alice.tar")
	mustCLI(t, envA, "account", "export", "alice.test", file, "--to", b.URL, "--to-rotation-key", rotKey)
	if out := mustCLI(t, envB, "account", "import", file); !strings.Contains(out, "active here") {
		t.Fatalf("import: %s", out)
	}
	post(b.URL+"/xrpc/com.atproto.server.createSession", `{"identifier":"alice.test","password":"hunter2"}`, "")
	resp, err := http.Get(plcURL + "/" + did)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(doc), fmt.Sprintf(`"serviceEndpoint":"http://localhost:%d"`, portB)) {
		t.Fatalf("DID document does not name the second server: %s", doc)
	}
}
