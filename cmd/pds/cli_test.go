package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

// pdsCLI runs the command line in-process against a server, as an operator's shell would.
func pdsCLI(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cl := &cli{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin), getenv: func(k string) string { return env[k] }}
	code = run(context.Background(), cl, args)
	return out.String(), errb.String(), code
}

func mustCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, errOut, code := pdsCLI(t, env, "", args...)
	if code != 0 {
		t.Fatalf("pds %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestCLIAgainstRunningServer(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_INVITE_REQUIRED": "true"}})
	env := map[string]string{"PDS_ADMIN_SERVER_URL": p.URL, "PDS_ADMIN_PASSWORD": "admin-pass", "PDS_HOSTNAME": "localhost"}

	// Wrong password: a clear error, exit 1.
	if _, errOut, code := pdsCLI(t, env, "", "account", "list", "--admin-password", "nope"); code != 1 || !strings.Contains(errOut, "AuthenticationRequired") {
		t.Fatalf("wrong password: exit %d, %q", code, errOut)
	}
	// No password anywhere (and no secrets.json): refused before any request.
	if _, errOut, code := pdsCLI(t, map[string]string{"PDS_ADMIN_SERVER_URL": p.URL, "PDS_DATA_DIRECTORY": t.TempDir()}, "", "account", "list"); code != 1 || !strings.Contains(errOut, "no admin password") {
		t.Fatalf("no password: exit %d, %q", code, errOut)
	}
	// The password is read from the data directory's secrets.json when the environment has none.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secrets.json"), []byte(`{"adminPassword":"admin-pass"}`), 0o600)
	mustCLI(t, map[string]string{"PDS_ADMIN_SERVER_URL": p.URL, "PDS_DATA_DIRECTORY": dir}, "account", "list")

	// Invites.
	code := strings.TrimSpace(mustCLI(t, env, "invite", "create", "--uses", "2"))
	if !strings.HasPrefix(code, "localhost-") || strings.Contains(code, "\n") {
		t.Fatalf("invite create: %q", code)
	}
	var inv []struct {
		Account string   `json:"account"`
		Codes   []string `json:"codes"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "invite", "create", "--count", "3", "--json")), &inv); err != nil || len(inv) != 1 || len(inv[0].Codes) != 3 {
		t.Fatalf("invite create --json: %v %v", inv, err)
	}
	if c := strings.TrimSpace(mustCLI(t, env, "create-invite", "1")); !strings.HasPrefix(c, "localhost-") {
		t.Fatalf("create-invite: %q", c)
	}

	// account create: with an explicit invite, and without (one is made because the server requires it).
	out := mustCLI(t, env, "account", "create", "--handle", "alice.test", "--email", "alice@example.com", "--invite", code)
	if !strings.Contains(out, "alice.test") || !strings.Contains(out, "did:plc:") {
		t.Fatalf("account create: %s", out)
	}
	var bob struct{ DID, Handle, Password string }
	if err := json.Unmarshal([]byte(mustCLI(t, env, "account", "create", "bob@example.com", "bob.test", "--json")), &bob); err != nil || bob.Password == "" || !strings.HasPrefix(bob.DID, "did:plc:") {
		t.Fatalf("account create --json: %+v %v", bob, err)
	}
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "bob.test", "password": bob.Password}, ""); r.Status != 200 {
		t.Fatalf("login with the printed password: %s", r)
	}
	mustCLI(t, env, "account", "create", "--handle", "carol.test", "--email", "carol@example.com", "--password", "carol-pass")

	// account list: a table, and JSON, paged through everyone.
	table := mustCLI(t, env, "account", "list", "--page-size", "1")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "HANDLE") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("account list table:\n%s", table)
	}
	for _, h := range []string{"alice.test", "bob.test", "carol.test"} {
		if !strings.Contains(table, h) {
			t.Fatalf("account list lacks %s:\n%s", h, table)
		}
	}

	// takedown / untakedown by handle, seen in the list and by the server.
	out = mustCLI(t, env, "account", "takedown", "carol.test", "--ref", "ticket-9")
	if !strings.Contains(out, "taken down") {
		t.Fatalf("takedown: %s", out)
	}
	var list []listedAccount
	if err := json.Unmarshal([]byte(mustCLI(t, env, "account", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, a := range list {
		statuses[a.Handle] = a.Status
		if a.DID == "" || a.Email == "" || a.CreatedAt == "" {
			t.Fatalf("account list row incomplete: %+v", a)
		}
	}
	if statuses["carol.test"] != "takendown" || statuses["alice.test"] != "active" || len(list) != 3 {
		t.Fatalf("statuses: %v", statuses)
	}
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "carol.test", "password": "carol-pass"}, ""); r.Status != 401 || r.ErrorName() != "AccountTakedown" {
		t.Fatalf("login while taken down: %s", r)
	}
	mustCLI(t, env, "account", "untakedown", "carol.test")
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "carol.test", "password": "carol-pass"}, ""); r.Status != 200 {
		t.Fatalf("login after untakedown: %s", r)
	}

	// reset-password prints a new password that works; the old one does not.
	var reset struct{ DID, Password string }
	if err := json.Unmarshal([]byte(mustCLI(t, env, "account", "reset-password", "carol.test", "--json")), &reset); err != nil || reset.Password == "" {
		t.Fatalf("reset-password: %+v %v", reset, err)
	}
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "carol.test", "password": "carol-pass"}, ""); r.Status != 401 {
		t.Fatalf("old password still works: %s", r)
	}
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "carol.test", "password": reset.Password}, ""); r.Status != 200 {
		t.Fatalf("new password: %s", r)
	}

	// delete asks for confirmation; a wrong answer deletes nothing.
	if _, errOut, code := pdsCLI(t, env, "no\n", "account", "delete", "carol.test"); code != 1 || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("delete without confirmation: exit %d %q", code, errOut)
	}
	if _, _, code := pdsCLI(t, env, reset.DID+"\n", "account", "delete", "carol.test"); code != 0 {
		t.Fatal("delete with confirmation failed")
	}
	mustCLI(t, env, "account", "delete", bob.DID, "--yes")
	if err := json.Unmarshal([]byte(mustCLI(t, env, "account", "list", "--json")), &list); err != nil || len(list) != 1 || list[0].Handle != "alice.test" {
		t.Fatalf("after deletes: %+v %v", list, err)
	}
	if _, errOut, code := pdsCLI(t, env, "", "account", "delete", bob.DID, "--yes"); code != 1 || !strings.Contains(errOut, "AccountNotFound") {
		t.Fatalf("deleting twice: exit %d %q", code, errOut)
	}
	r := p.Query("com.atproto.admin.getAccountInfo", url.Values{"did": {bob.DID}}, "")
	if r.Status != 401 {
		t.Fatalf("admin API without credentials: %s", r)
	}
}

func TestCLIRequestCrawl(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+string(body))
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer relay.Close()
	env := map[string]string{"PDS_HOSTNAME": "pds.example.com", "PDS_CRAWLERS": relay.URL}
	out := mustCLI(t, env, "request-crawl")
	if !strings.Contains(out, "crawl requested for pds.example.com") || len(got) != 1 ||
		got[0] != `/xrpc/com.atproto.sync.requestCrawl {"hostname":"pds.example.com"}` {
		t.Fatalf("request-crawl: %q, relay saw %v", out, got)
	}
	// A failing relay is an error (exit 1), reported per relay.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadRequest) }))
	defer bad.Close()
	out, errOut, code := pdsCLI(t, env, "", "request-crawl", relay.URL, bad.URL)
	if code != 1 || !strings.Contains(out, "failed: HTTP 400") || !strings.Contains(errOut, "1 of 2 relays failed") {
		t.Fatalf("failing relay: exit %d %q %q", code, out, errOut)
	}
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	// `pds help WORDS...` describes every command (the root help lists the top-level ones and the groups).
	for _, c := range commands {
		out := mustCLI(t, nil, append([]string{"help"}, strings.Fields(c.name)...)...)
		if !strings.Contains(out, c.summary) {
			t.Errorf("help %s lacks its summary:\n%s", c.name, out)
		}
	}
	if _, errOut, code := pdsCLI(t, nil, "", "account", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: exit %d %q", code, errOut)
	}
}
