package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testsmtp"
)

func okResp(t *testing.T, r *testpds.Response) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	return r.JSON()
}

// TestAccountExportImport moves an account between two servers of one operator with `pds account export
// --to` and `pds account import`: the account keeps its password, app passwords, signing key, preferences,
// records and blobs, and the PLC operation in the archive hands the DID over.
func TestAccountExportImport(t *testing.T) {
	t.Parallel()
	a := testpds.Start(t, testpds.Options{})
	b := testpds.Start(t, testpds.Options{PLCURL: a.PLCURL})
	envA := map[string]string{"PDS_ADMIN_SERVER_URL": a.URL, "PDS_ADMIN_PASSWORD": "admin-pass"}
	envB := map[string]string{"PDS_ADMIN_SERVER_URL": b.URL, "PDS_ADMIN_PASSWORD": "admin-pass", "PDS_DATA_DIRECTORY": b.Config.DataDirectory}

	alice := a.CreateAccount("alice")
	blobData := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte("pixels"), 500)...)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/xrpc/com.atproto.repo.uploadBlob", bytes.NewReader(blobData))
	req.Header.Set("Content-Type", "image/png")
	blob := okResp(t, a.Do(req, alice.AccessJwt))["blob"]
	okResp(t, a.Procedure("com.atproto.repo.putRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self",
		"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": blob}}, alice.AccessJwt))
	for _, text := range []string{"one", "two", "three"} {
		okResp(t, a.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post",
			"record": map[string]any{"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-26T00:00:00Z"}}, alice.AccessJwt))
	}
	okResp(t, a.Procedure("app.bsky.actor.putPreferences", map[string]any{"preferences": []any{map[string]any{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true}}}, alice.AccessJwt))
	appPassword := okResp(t, a.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "phone"}, alice.AccessJwt))["password"].(string)
	keyBefore, err := (&plc.Client{URL: a.PLCURL}).GetDocumentData(context.Background(), alice.DID)
	if err != nil {
		t.Fatal(err)
	}

	// B's rotation key, as its operator would print it.
	rotKey := strings.TrimSpace(mustCLI(t, envB, "plc", "rotation-key"))
	if pub, _ := b.Config.RotationKey.PublicKey(); rotKey != pub.DIDKey() {
		t.Fatalf("plc rotation-key printed %q, want %s", rotKey, pub.DIDKey())
	}

	// An active account is not exported without --deactivate (or --to, which implies it).
	file := filepath.Join(t.TempDir(), "alice.tar")
	if _, errOut, code := pdsCLI(t, envA, "", "account", "export", alice.Handle, file); code != 1 || !strings.Contains(errOut, "deactivate") {
		t.Fatalf("export of an active account: exit %d %s", code, errOut)
	}
	out := mustCLI(t, envA, "account", "export", alice.Handle, file, "--to", b.URL, "--to-rotation-key", rotKey)
	if !strings.Contains(out, alice.DID) {
		t.Fatalf("export: %s", out)
	}
	if s := okResp(t, a.Query("com.atproto.server.getSession", nil, alice.AccessJwt)); s["active"] != false {
		t.Fatalf("exported account still active at A: %v", s)
	}
	out = mustCLI(t, envB, "account", "import", file)
	if !strings.Contains(out, "4 records") || !strings.Contains(out, "1 blobs") || !strings.Contains(out, "active here") {
		t.Fatalf("import: %s", out)
	}

	// At B: same password, same app password, same key in the PLC document, which now points at B.
	sess := okResp(t, b.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": alice.Password}, ""))
	if sess["did"] != alice.DID || sess["active"] != true {
		t.Fatalf("login at B: %v", sess)
	}
	okResp(t, b.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": appPassword}, ""))
	doc, err := (&plc.Client{URL: a.PLCURL}).GetDocumentData(context.Background(), alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	if doc.PDSEndpoint() != b.URL || doc.SigningKey() != keyBefore.SigningKey() || !slices.Contains(doc.RotationKeys, rotKey) {
		t.Fatalf("PLC document after the import: %+v", doc)
	}
	token := sess["accessJwt"].(string)
	if st := okResp(t, b.Query("com.atproto.server.checkAccountStatus", nil, token)); st["indexedRecords"] != float64(4) || st["importedBlobs"] != float64(1) || st["validDid"] != true {
		t.Fatalf("status at B: %v", st)
	}
	cid := blob.(map[string]any)["ref"].(map[string]any)["$link"].(string)
	if r := b.Query("com.atproto.sync.getBlob", url.Values{"did": {alice.DID}, "cid": {cid}}, ""); r.Status != 200 || !bytes.Equal(r.Body, blobData) {
		t.Fatalf("blob at B: %d", r.Status)
	}
	prefs := okResp(t, b.Query("app.bsky.actor.getPreferences", nil, token))["preferences"].([]any)
	if len(prefs) != 1 || prefs[0].(map[string]any)["$type"] != "app.bsky.actor.defs#adultContentPref" {
		t.Fatalf("preferences at B: %v", prefs)
	}
	okResp(t, b.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": "from B", "createdAt": "2026-11-26T00:00:00Z"}}, token))

	// Importing the same archive again is refused: the account is active here now.
	if _, errOut, code := pdsCLI(t, envB, "", "account", "import", file); code != 1 || !strings.Contains(errOut, "active") {
		t.Fatalf("second import: exit %d %s", code, errOut)
	}
}

// TestMigrateCommand runs `pds migrate` as a user would: the password from the environment, the emailed code
// typed on stdin when asked.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	mail := testsmtp.Start(t, testsmtp.Options{})
	a := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_EMAIL_SMTP_URL": mail.URL(), "PDS_EMAIL_FROM_ADDRESS": "pds@localhost.test"}})
	b := testpds.Start(t, testpds.Options{PLCURL: a.PLCURL})
	bob := a.CreateAccount("bob")
	for _, text := range []string{"one", "two"} {
		okResp(t, a.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": bob.DID, "collection": "app.bsky.feed.post",
			"record": map[string]any{"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-26T00:00:00Z"}}, bob.AccessJwt))
	}
	stdin, typer := io.Pipe()
	go func() {
		defer typer.Close()
		m := mail.Next(t) // the PLC code arrives once the command asked for it
		io.WriteString(typer, m.Token(t)+"\n")
	}()
	var stdout, stderr bytes.Buffer
	state := filepath.Join(t.TempDir(), "state.json")
	code := run(context.Background(), &cli{stdout: &stdout, stderr: &stderr, stdin: stdin, getenv: func(k string) string {
		return map[string]string{"PDS_ADMIN_SERVER_URL": b.URL, "PDS_MIGRATE_PASSWORD": bob.Password}[k]
	}}, []string{"migrate", "--from", a.URL, "--identifier", bob.Handle, "--state", state})
	if code != 0 {
		t.Fatalf("pds migrate: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "moved to "+b.URL) || !strings.Contains(stdout.String(), "2 records") {
		t.Fatalf("pds migrate output: %s", stdout.String())
	}
	for _, step := range []string{"creating the account", "importing the repository", "updating the DID document", "deactivating"} {
		if !strings.Contains(stderr.String(), step) {
			t.Fatalf("progress lacks %q:\n%s", step, stderr.String())
		}
	}
	sess := okResp(t, b.Procedure("com.atproto.server.createSession", map[string]any{"identifier": bob.DID, "password": bob.Password}, ""))
	if sess["active"] != true {
		t.Fatalf("bob at B: %v", sess)
	}
}
