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
	testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("before")}, alice.AccessJwt))
	img := testpds.PNG(3, 2000)
	ref := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", img)
	testpds.MustOK(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("pic", ref)))
	fh := testpds.Subscribe(t, p, "")

	out := testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject(alice.DID), "takedown": map[string]any{"applied": true, "ref": "case-17"},
	}))
	if out["takedown"].(map[string]any)["applied"] != true || out["subject"].(map[string]any)["did"] != alice.DID {
		t.Fatalf("updateSubjectStatus: %v", out)
	}
	st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"did": {alice.DID}}))
	if td := st["takedown"].(map[string]any); td["applied"] != true || td["ref"] != "case-17" {
		t.Fatalf("getSubjectStatus: %v", st)
	}

	// The firehose says so.
	f := testpds.NextFor(t, fh, "#account", alice.DID)
	if f.Account == nil || f.Account.Did != alice.DID || f.Account.Active || f.Account.Status == nil || *f.Account.Status != "takendown" {
		t.Fatalf("firehose after takedown: %+v", f)
	}
	// Sync reads hide the repo; record reads too.
	did := url.Values{"did": {alice.DID}}
	for _, m := range []string{"com.atproto.sync.getRepo", "com.atproto.sync.getLatestCommit"} {
		testpds.WantStatus(t, p.Query(m, did, ""), 400, "RepoTakendown")
	}
	if rs := testpds.MustOK(t, p.Query("com.atproto.sync.getRepoStatus", did, "")); rs["active"] != false || rs["status"] != "takendown" {
		t.Fatalf("getRepoStatus: %v", rs)
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""), 400, "RepoTakendown")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, ref.CID(), nil, ""), 400, "RepoTakendown")
	// Other accounts are untouched.
	testpds.MustOK(t, p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {bob.DID}}, ""))

	// Sessions: refresh tokens are revoked, access tokens stop working, logins are refused...
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, alice.RefreshJwt), 400, "ExpiredToken")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("during")}, alice.AccessJwt), 401, "AccountTakedown")
	testpds.WantStatus(t, testpds.Login(t, p, alice.Handle, alice.Password), 401, "AccountTakedown")
	// ...except with allowTakendown, which gives the limited takendown scope.
	td := testpds.MustOK(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": alice.Password, "allowTakendown": true}, ""))
	tdTok := td["accessJwt"].(string)
	if s := testpds.JWTScope(t, tdTok); s != "com.atproto.takendown" || td["active"] != false || td["status"] != "takendown" {
		t.Fatalf("allowTakendown session: scope %q, %v", s, td)
	}
	if s := testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, tdTok)); s["status"] != "takendown" {
		t.Fatalf("getSession with takendown scope: %v", s)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("during")}, tdTok), 400, "InvalidToken")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "x"}, tdTok), 400, "InvalidToken")

	// Reversal restores everything and says so on the firehose.
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject(alice.DID), "takedown": map[string]any{"applied": false},
	}))
	f = testpds.NextFor(t, fh, "#account", alice.DID)
	if f.Account == nil || f.Account.Did != alice.DID || !f.Account.Active || f.Account.Status != nil {
		t.Fatalf("firehose after reversal: %+v", f)
	}
	if st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"did": {alice.DID}})); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("getSubjectStatus after reversal: %v", st)
	}
	for _, m := range []string{"com.atproto.sync.getRepo", "com.atproto.sync.getLatestCommit"} {
		if r := p.Query(m, did, ""); r.Status != 200 {
			t.Fatalf("%s after reversal: %s", m, r)
		}
	}
	if r := testpds.GetBlob(t, p, alice.DID, ref.CID(), nil, ""); r.Status != 200 || !bytes.Equal(r.Body, img) {
		t.Fatalf("getBlob after reversal: %d", r.Status)
	}
	fresh := testpds.MustOK(t, testpds.Login(t, p, alice.Handle, alice.Password))
	if s := testpds.JWTScope(t, fresh["accessJwt"].(string)); s != "com.atproto.access" {
		t.Fatalf("scope after reversal: %q", s)
	}
	testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("after")}, fresh["accessJwt"].(string)))
	if f = testpds.NextFor(t, fh, "#commit", alice.DID); f.Commit == nil || f.Commit.Repo != alice.DID {
		t.Fatalf("commit after reversal: %+v", f)
	}
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": repoSubject("did:plc:nobody"), "takedown": map[string]any{"applied": true},
	}), 400, "AccountNotFound")
}

func testRecordTakedown(t *testing.T, p *testpds.PDS) {
	alice := p.CreateAccount("rec")
	keep := testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("keep")}, alice.AccessJwt))
	bad := testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("bad")}, alice.AccessJwt))
	badURI, badCID := bad["uri"].(string), bad["cid"].(string)
	rkey := badURI[len(badURI)-13:]
	strong := map[string]any{"$type": "com.atproto.repo.strongRef", "uri": badURI, "cid": badCID}

	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": strong, "takedown": map[string]any{"applied": true, "ref": "r1"}}))
	st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"uri": {badURI}}))
	if st["takedown"].(map[string]any)["applied"] != true || st["subject"].(map[string]any)["cid"] != badCID {
		t.Fatalf("getSubjectStatus(uri): %v", st)
	}
	get := url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", get, ""), 400, "RecordNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRecord", url.Values{"did": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""), 400, "RecordNotFound")
	recs := testpds.MustOK(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""))["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["uri"] != keep["uri"] {
		t.Fatalf("listRecords shows the taken-down record: %v", recs)
	}
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": strong, "takedown": map[string]any{"applied": false}}))
	testpds.MustOK(t, p.Query("com.atproto.repo.getRecord", get, ""))
	if r := p.Query("com.atproto.sync.getRecord", url.Values{"did": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""); r.Status != 200 {
		t.Fatalf("sync.getRecord after reversal: %s", r)
	}
	if recs := testpds.MustOK(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}}, ""))["records"].([]any); len(recs) != 2 {
		t.Fatalf("listRecords after reversal: %v", recs)
	}
	testpds.WantStatus(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"uri": {"at://" + alice.DID + "/app.bsky.feed.post/3aaaaaaaaaaaa"}}), 400, "NotFound")
}

func testBlobTakedownState(t *testing.T, p *testpds.PDS) {
	alice := p.CreateAccount("blobby")
	data := testpds.PNG(7, 4000)
	ref := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", data)
	if r := testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("pic", ref)); r.Status != 200 {
		t.Fatalf("post with image: %s", r)
	}
	blob := ref.CID()
	subj := map[string]any{"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.DID, "cid": blob}
	q := url.Values{"did": {alice.DID}, "blob": {blob}}
	if st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("before: %v", st)
	}
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": subj, "takedown": map[string]any{"applied": true, "ref": "b1"}}))
	if st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != true {
		t.Fatalf("after takedown: %v", st)
	}
	// The bytes moved to quarantine.
	inQuarantine := func() bool {
		for _, f := range testpds.BlobFiles(t, p) {
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
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, blob, nil, ""), 404, "BlobNotFound")
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("again", ref)), 400, "BlobNotFound")

	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{"subject": subj, "takedown": map[string]any{"applied": false}}))
	if st := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", q)); st["takedown"].(map[string]any)["applied"] != false {
		t.Fatalf("after reversal: %v", st)
	}
	if inQuarantine() {
		t.Fatal("restored blob still in quarantine")
	}
	r := testpds.GetBlob(t, p, alice.DID, blob, nil, "")
	if r.Status != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("getBlob after reversal: %d, %d bytes", r.Status, len(r.Body))
	}
	testpds.WantStatus(t, testpds.AdminQuery(t, p, "com.atproto.admin.getSubjectStatus", url.Values{"blob": {blob}}), 400, "InvalidRequest")
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject": map[string]any{"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.DID, "cid": "not-a-cid"}, "takedown": map[string]any{"applied": true},
	}), 400, "InvalidRequest")
}
