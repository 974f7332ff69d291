package pds_test

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func repoSubject(did string) map[string]any {
	return map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": did}
}

// The takedown tests share one server; each uses its own accounts.
func TestTakedowns(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	t.Run("repo", func(t *testing.T) { testRepoTakedownAndReversal(t, p) })
	t.Run("record", func(t *testing.T) { testRecordTakedown(t, p) })
	t.Run("blob", func(t *testing.T) { testBlobTakedownState(t, p) })
}

func testRepoTakedownAndReversal(t *testing.T, p *testpds.PDS) {
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	mustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("before")}, alice.AccessJwt))
	img := blPNG(3, 2000)
	ref := blUploadOK(t, p, alice.AccessJwt, "image/png", img)
	mustOK(t, blCreate(t, p, alice, "app.bsky.feed.post", blImagePost("pic", ref)))
	fh := subscribe(t, p, "")

	out := mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject(alice.DID), "takedown": map[string]any{"applied": true, "ref": "case-17"},
	}))
	if out["takedown"].(map[string]any)["applied"] != true || out["subject"].(map[string]any)["did"] != alice.DID {
		t.Fatalf("updateSubjectStatus: %v", out)
	}
	st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"did": {alice.DID}}))
	if td := st["takedown"].(map[string]any); td["applied"] != true || td["ref"] != "case-17" {
		t.Fatalf("getSubjectStatus: %v", st)
	}

	// The firehose says so.
	f := nextFor(t, fh, "#account", alice.DID)
	if f.Account == nil || f.Account.Did != alice.DID || f.Account.Active || f.Account.Status == nil || *f.Account.Status != "takendown" {
		t.Fatalf("firehose after takedown: %+v", f)
	}
	// Sync reads hide the repo; record reads too.
	did := url.Values{"did": {alice.DID}}
	for _, m := range []string{"com.atproto.sync.getRepo", "com.atproto.sync.getLatestCommit"} {
		wantStatus(t, p.Query(m, did, ""), 400, "RepoTakendown")
	}
	if rs := mustOK(t, p.Query("com.atproto.sync.getRepoStatus", did, "")); rs["active"] != false || rs["status"] != "takendown" {
		t.Fatalf("getRepoStatus: %v", rs)
	}
	wantStatus(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""), 400, "RepoTakendown")
	wantStatus(t, blGet(t, p, alice.DID, ref.CID(), nil, ""), 400, "RepoTakendown")
	// Other accounts are untouched.
	mustOK(t, p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {bob.DID}}, ""))

	// Sessions: refresh tokens are revoked, access tokens stop working, logins are refused...
	wantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, alice.RefreshJwt), 400, "ExpiredToken")
	wantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("during")}, alice.AccessJwt), 401, "AccountTakedown")
	wantStatus(t, login(t, p, alice.Handle, alice.Password), 401, "AccountTakedown")
	// ...except with allowTakendown, which gives the limited takendown scope.
	td := mustOK(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": alice.Password, "allowTakendown": true}, ""))
	tdTok := td["accessJwt"].(string)
	if s := jwtScope(t, tdTok); s != "com.atproto.takendown" || td["active"] != false || td["status"] != "takendown" {
		t.Fatalf("allowTakendown session: scope %q, %v", s, td)
	}
	if s := mustOK(t, p.Query("com.atproto.server.getSession", nil, tdTok)); s["status"] != "takendown" {
		t.Fatalf("getSession with takendown scope: %v", s)
	}
	wantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("during")}, tdTok), 400, "InvalidToken")
	wantStatus(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "x"}, tdTok), 400, "InvalidToken")

	// Reversal restores everything and says so on the firehose.
	mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject(alice.DID), "takedown": map[string]any{"applied": false},
	}))
	f = nextFor(t, fh, "#account", alice.DID)
	if f.Account == nil || f.Account.Did != alice.DID || !f.Account.Active || f.Account.Status != nil {
		t.Fatalf("firehose after reversal: %+v", f)
	}
	if st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"did": {alice.DID}})); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("getSubjectStatus after reversal: %v", st)
	}
	for _, m := range []string{"com.atproto.sync.getRepo", "com.atproto.sync.getLatestCommit"} {
		if r := p.Query(m, did, ""); r.Status != 200 {
			t.Fatalf("%s after reversal: %s", m, r)
		}
	}
	if r := blGet(t, p, alice.DID, ref.CID(), nil, ""); r.Status != 200 || !bytes.Equal(r.Body, img) {
		t.Fatalf("getBlob after reversal: %d", r.Status)
	}
	fresh := mustOK(t, login(t, p, alice.Handle, alice.Password))
	if s := jwtScope(t, fresh["accessJwt"].(string)); s != "com.atproto.access" {
		t.Fatalf("scope after reversal: %q", s)
	}
	mustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("after")}, fresh["accessJwt"].(string)))
	if f = nextFor(t, fh, "#commit", alice.DID); f.Commit == nil || f.Commit.Repo != alice.DID {
		t.Fatalf("commit after reversal: %+v", f)
	}
	wantStatus(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject("did:plc:nobody"), "takedown": map[string]any{"applied": true},
	}), 400, "AccountNotFound")
}

func testRecordTakedown(t *testing.T, p *testpds.PDS) {
	alice := p.CreateAccount("rec")
	keep := mustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("keep")}, alice.AccessJwt))
	bad := mustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": post("bad")}, alice.AccessJwt))
	badURI, badCID := bad["uri"].(string), bad["cid"].(string)
	rkey := badURI[len(badURI)-13:]
	strong := map[string]any{"$type": "com.atproto.repo.strongRef", "uri": badURI, "cid": badCID}

	mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": strong, "takedown": map[string]any{"applied": true, "ref": "r1"}}))
	st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"uri": {badURI}}))
	if st["takedown"].(map[string]any)["applied"] != true || st["subject"].(map[string]any)["cid"] != badCID {
		t.Fatalf("getSubjectStatus(uri): %v", st)
	}
	get := url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}
	wantStatus(t, p.Query("com.atproto.repo.getRecord", get, ""), 400, "RecordNotFound")
	wantStatus(t, p.Query("com.atproto.sync.getRecord", url.Values{"did": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""), 400, "RecordNotFound")
	recs := mustOK(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""))["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["uri"] != keep["uri"] {
		t.Fatalf("listRecords shows the taken-down record: %v", recs)
	}
	mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": strong, "takedown": map[string]any{"applied": false}}))
	mustOK(t, p.Query("com.atproto.repo.getRecord", get, ""))
	if r := p.Query("com.atproto.sync.getRecord", url.Values{"did": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""); r.Status != 200 {
		t.Fatalf("sync.getRecord after reversal: %s", r)
	}
	if recs := mustOK(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""))["records"].([]any); len(recs) != 2 {
		t.Fatalf("listRecords after reversal: %v", recs)
	}
	wantStatus(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"uri": {"at://" + alice.DID + "/app.bsky.feed.post/3aaaaaaaaaaaa"}}), 400, "NotFound")
}

func testBlobTakedownState(t *testing.T, p *testpds.PDS) {
	alice := p.CreateAccount("blobby")
	data := blPNG(7, 4000)
	ref := blUploadOK(t, p, alice.AccessJwt, "image/png", data)
	if r := blCreate(t, p, alice, "app.bsky.feed.post", blImagePost("pic", ref)); r.Status != 200 {
		t.Fatalf("post with image: %s", r)
	}
	blob := ref.CID()
	subj := map[string]any{"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.DID, "cid": blob}
	q := url.Values{"did": {alice.DID}, "blob": {blob}}
	if st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("before: %v", st)
	}
	mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": subj, "takedown": map[string]any{"applied": true, "ref": "b1"}}))
	if st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != true {
		t.Fatalf("after takedown: %v", st)
	}
	// The bytes moved to quarantine.
	inQuarantine := func() bool {
		for _, f := range blFiles(t, p) {
			if strings.HasSuffix(f, blob) {
				return strings.Contains(f, "quarantine")
			}
		}
		t.Fatalf("blob file %s not found", blob)
		return false
	}
	if !inQuarantine() {
		t.Fatal("taken-down blob not quarantined")
	}
	// getBlob refuses it, and a new record cannot reference it.
	wantStatus(t, blGet(t, p, alice.DID, blob, nil, ""), 404, "BlobNotFound")
	wantStatus(t, blCreate(t, p, alice, "app.bsky.feed.post", blImagePost("again", ref)), 400, "BlobNotFound")

	mustOK(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": subj, "takedown": map[string]any{"applied": false}}))
	if st := mustOK(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("after reversal: %v", st)
	}
	if inQuarantine() {
		t.Fatal("restored blob still in quarantine")
	}
	r := blGet(t, p, alice.DID, blob, nil, "")
	if r.Status != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("getBlob after reversal: %d, %d bytes", r.Status, len(r.Body))
	}
	wantStatus(t, adminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"blob": {blob}}), 400, "InvalidRequest")
	wantStatus(t, adminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": map[string]any{"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.DID, "cid": "not-a-cid"}, "takedown": map[string]any{"applied": true},
	}), 400, "InvalidRequest")
}
