package pds_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
)

func TestBasicRoutes(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	r := p.Query("_health", nil, "")
	testpds.WantStatus(t, r, 200, "")
	if r.JSON()["version"] == nil {
		t.Fatalf("health has no version: %s", r)
	}
	for _, path := range []string{"/", "/robots.txt"} {
		resp, err := http.Get(p.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	d := p.Query("com.atproto.server.describeServer", nil, "")
	testpds.WantStatus(t, d, 200, "")
	if d.JSON()["did"] != p.Config.ServiceDID {
		t.Fatalf("describeServer did: %s", d)
	}
	// Unknown method, wrong verb.
	testpds.WantStatus(t, p.Query("com.example.nothing", nil, ""), 501, "MethodNotImplemented")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.describeServer", map[string]any{}, ""), 400, "InvalidRequest")
}

func TestAccountsAndSessions(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	if !strings.HasPrefix(alice.DID, "did:plc:") {
		t.Fatalf("did: %q", alice.DID)
	}
	// The PLC directory has the DID with this server as its PDS and the handle.
	data, err := (&plc.Client{URL: p.PLCURL}).GetDocumentData(context.Background(), alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	if data.PDSEndpoint() != p.URL || data.Handle() != "alice.test" {
		t.Fatalf("PLC data: %+v", data)
	}

	// Duplicate handle, bad handles, missing fields.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAccount", map[string]any{"handle": "alice.test", "email": "x@example.com", "password": "p"}, ""), 400, "HandleNotAvailable")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAccount", map[string]any{"handle": "al.test", "email": "y@example.com", "password": "p"}, ""), 400, "InvalidHandle")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAccount", map[string]any{"handle": "bob.example.org", "email": "y@example.com", "password": "p"}, ""), 400, "InvalidHandle")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAccount", map[string]any{"handle": "admin.test", "email": "y@example.com", "password": "p"}, ""), 400, "HandleNotAvailable")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAccount", map[string]any{"handle": "carol.test", "password": "p"}, ""), 400, "InvalidRequest")

	// Login by handle, DID and email.
	for _, id := range []string{alice.Handle, alice.DID, alice.Email} {
		r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": id, "password": alice.Password}, "")
		testpds.WantStatus(t, r, 200, "")
		if r.JSON()["did"] != alice.DID {
			t.Fatalf("session for %s: %s", id, r)
		}
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": "wrong"}, ""), 401, "AuthenticationRequired")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "nobody.test", "password": "wrong"}, ""), 401, "AuthenticationRequired")

	// getSession with access token; missing, garbage, and refresh tokens are refused.
	g := p.Query("com.atproto.server.getSession", nil, alice.AccessJwt)
	testpds.WantStatus(t, g, 200, "")
	if g.JSON()["handle"] != "alice.test" || g.JSON()["active"] != true {
		t.Fatalf("getSession: %s", g)
	}
	testpds.WantStatus(t, p.Query("com.atproto.server.getSession", nil, ""), 401, "AuthMissing")
	testpds.WantStatus(t, p.Query("com.atproto.server.getSession", nil, "not.a.jwt"), 400, "InvalidToken")
	testpds.WantStatus(t, p.Query("com.atproto.server.getSession", nil, alice.RefreshJwt), 400, "InvalidToken")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, alice.AccessJwt), 400, "InvalidToken")

	// Refresh rotates; the old refresh token gives the same successor during the grace period.
	r1 := p.Procedure("com.atproto.server.refreshSession", nil, alice.RefreshJwt)
	testpds.WantStatus(t, r1, 200, "")
	next := r1.JSON()["refreshJwt"].(string)
	r2 := p.Procedure("com.atproto.server.refreshSession", nil, alice.RefreshJwt)
	testpds.WantStatus(t, r2, 200, "")
	testpds.WantStatus(t, p.Query("com.atproto.server.getSession", nil, r1.JSON()["accessJwt"].(string)), 200, "")

	// deleteSession revokes the refresh token.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deleteSession", nil, next), 200, "")
	// 400 as in the reference (InvalidRequestError): clients treat 400 ExpiredToken as "log in again".
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, next), 400, "ExpiredToken")

	// checkAccountStatus
	st := p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt)
	testpds.WantStatus(t, st, 200, "")
	if st.JSON()["activated"] != true || st.JSON()["repoRev"] == "" {
		t.Fatalf("checkAccountStatus: %s", st)
	}
}

func TestRecordWrites(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")

	cr := p.Procedure("com.atproto.repo.createRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("hello"),
	}, alice.AccessJwt)
	testpds.WantStatus(t, cr, 200, "")
	out := cr.JSON()
	uri := out["uri"].(string)
	if out["validationStatus"] != "valid" || !strings.HasPrefix(uri, "at://"+alice.DID+"/app.bsky.feed.post/") {
		t.Fatalf("createRecord: %s", cr)
	}
	rkey := uri[strings.LastIndex(uri, "/")+1:]
	if _, err := syntax.ParseTID(rkey); err != nil {
		t.Fatalf("rkey %q is not a TID", rkey)
	}

	// Read it back.
	gr := p.Query("com.atproto.repo.getRecord", url.Values{"repo": {"alice.test"}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, "")
	testpds.WantStatus(t, gr, 200, "")
	if gr.JSON()["cid"] != out["cid"] || gr.JSON()["value"].(map[string]any)["text"] != "hello" {
		t.Fatalf("getRecord: %s", gr)
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {"3zzzzzzzzzzzz"}}, ""), 400, "RecordNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""), 400, "")
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}}, ""), 400, "InvalidRequest")

	// Unknown collection: stored, status unknown; validate=true refuses it; validate=false skips.
	u := p.Procedure("com.atproto.repo.createRecord", map[string]any{
		"repo": alice.DID, "collection": "com.example.thing", "record": map[string]any{"n": 1},
	}, alice.AccessJwt)
	testpds.WantStatus(t, u, 200, "")
	if u.JSON()["validationStatus"] != "unknown" {
		t.Fatalf("unknown collection: %s", u)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{
		"repo": alice.DID, "collection": "com.example.thing", "validate": true, "record": map[string]any{"n": 1},
	}, alice.AccessJwt), 400, "InvalidRequest")

	// Invalid records and data-model violations.
	for name, rec := range map[string]string{
		"missing text": `{"$type":"app.bsky.feed.post","createdAt":"2026-11-26T05:00:00.000Z"}`,
		"float":        `{"$type":"com.example.thing","n":1.5}`,
		"big int":      `{"$type":"com.example.thing","n":9007199254740993}`,
		"wrong type":   `{"$type":"app.bsky.feed.like","n":1}`,
		"bad link":     `{"$type":"com.example.thing","l":{"$link":"nope"}}`,
	} {
		coll := "com.example.thing"
		if strings.Contains(rec, "feed.post") {
			coll = "app.bsky.feed.post"
		}
		body := fmt.Sprintf(`{"repo":%q,"collection":%q,"record":%s}`, alice.DID, coll, rec)
		r := p.Procedure("com.atproto.repo.createRecord", body, alice.AccessJwt)
		if r.Status != 400 || r.ErrorName() != "InvalidRequest" {
			t.Errorf("%s: want 400 InvalidRequest, got %s", name, r)
		}
	}
	// Invalid UTF-8 in the body is refused, not replaced.
	bad := []byte(fmt.Sprintf(`{"repo":%q,"collection":"com.example.thing","record":{"s":"`, alice.DID))
	bad = append(bad, 0xff, 0xfe)
	bad = append(bad, []byte(`"}}`)...)
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", bad, alice.AccessJwt), 400, "InvalidRequest")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", `{"repo":`, alice.AccessJwt), 400, "InvalidRequest")

	// Writing to another account's repo, without auth, with a refresh token.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": bob.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("x")}, alice.AccessJwt), 401, "AuthenticationRequired")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("x")}, ""), 401, "AuthMissing")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("x")}, alice.RefreshJwt), 400, "InvalidToken")

	// Oversized body.
	big := strings.Repeat("a", 1_100_000)
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "com.example.thing", "record": map[string]any{"s": big}}, alice.AccessJwt), 413, "PayloadTooLarge")

	// putRecord: create, then update with swapRecord; a stale swap fails.
	pr := p.Procedure("com.atproto.repo.putRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self",
		"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice"},
	}, alice.AccessJwt)
	testpds.WantStatus(t, pr, 200, "")
	firstCID := pr.JSON()["cid"].(string)
	pr2 := p.Procedure("com.atproto.repo.putRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self", "swapRecord": firstCID,
		"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice 2"},
	}, alice.AccessJwt)
	testpds.WantStatus(t, pr2, 200, "")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.putRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self", "swapRecord": firstCID,
		"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice 3"},
	}, alice.AccessJwt), 400, "InvalidSwap")
	// The lexicon's key type: a profile rkey must be "self".
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.putRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "other",
		"record": map[string]any{"$type": "app.bsky.actor.profile"},
	}, alice.AccessJwt), 400, "InvalidRequest")

	// swapCommit mismatch.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{
		"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("x"), "swapCommit": out["commit"].(map[string]any)["cid"],
	}, alice.AccessJwt), 400, "InvalidSwap")

	// applyWrites: create + update + delete in one commit.
	aw := p.Procedure("com.atproto.repo.applyWrites", map[string]any{
		"repo": alice.DID,
		"writes": []any{
			map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa2", "value": testpds.Post("one")},
			map[string]any{"$type": "com.atproto.repo.applyWrites#update", "collection": "app.bsky.actor.profile", "rkey": "self", "value": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "A"}},
			map[string]any{"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": rkey},
		},
	}, alice.AccessJwt)
	testpds.WantStatus(t, aw, 200, "")
	if res := aw.JSON()["results"].([]any); len(res) != 3 {
		t.Fatalf("applyWrites results: %s", aw)
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, ""), 400, "RecordNotFound")
	writes := make([]any, 201)
	for i := range writes {
		writes[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "com.example.thing", "value": map[string]any{"i": i}}
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.applyWrites", map[string]any{"repo": alice.DID, "writes": writes}, alice.AccessJwt), 400, "InvalidRequest")

	// deleteRecord, and deleting a missing record is a no-op.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa2"}, alice.AccessJwt), 200, "")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": "3kaaaaaaaaaa2"}, alice.AccessJwt), 200, "")

	// listRecords: newest first, paging, reverse.
	for i := 0; i < 5; i++ {
		testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": bob.DID, "collection": "app.bsky.feed.post", "record": testpds.Post(fmt.Sprint("post ", i))}, bob.AccessJwt), 200, "")
	}
	l1 := p.Query("com.atproto.repo.listRecords", url.Values{"repo": {bob.DID}, "collection": {"app.bsky.feed.post"}, "limit": {"3"}}, "")
	testpds.WantStatus(t, l1, 200, "")
	recs := l1.JSON()["records"].([]any)
	if len(recs) != 3 || recs[0].(map[string]any)["value"].(map[string]any)["text"] != "post 4" {
		t.Fatalf("listRecords page 1: %s", l1)
	}
	l2 := p.Query("com.atproto.repo.listRecords", url.Values{"repo": {bob.DID}, "collection": {"app.bsky.feed.post"}, "limit": {"3"}, "cursor": {l1.JSON()["cursor"].(string)}}, "")
	if recs2 := l2.JSON()["records"].([]any); len(recs2) != 2 || recs2[1].(map[string]any)["value"].(map[string]any)["text"] != "post 0" {
		t.Fatalf("listRecords page 2: %s", l2)
	}
	lr := p.Query("com.atproto.repo.listRecords", url.Values{"repo": {bob.DID}, "collection": {"app.bsky.feed.post"}, "reverse": {"true"}}, "")
	if recs := lr.JSON()["records"].([]any); len(recs) != 5 || recs[0].(map[string]any)["value"].(map[string]any)["text"] != "post 0" {
		t.Fatalf("listRecords reverse: %s", lr)
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.listRecords", url.Values{"repo": {bob.DID}, "collection": {"app.bsky.feed.post"}, "limit": {"101"}}, ""), 400, "InvalidRequest")

	// describeRepo
	dr := p.Query("com.atproto.repo.describeRepo", url.Values{"repo": {"alice.test"}}, "")
	testpds.WantStatus(t, dr, 200, "")
	if dr.JSON()["did"] != alice.DID || len(dr.JSON()["collections"].([]any)) == 0 {
		t.Fatalf("describeRepo: %s", dr)
	}
}

// TestExportVerifies exports a repo with sync.getRepo and verifies it independently: the commit signature
// against the key in the PLC document, every block's hash (go-car checks them), and the MST rebuilt from the
// records equals the commit's data.
func TestExportVerifies(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	want := map[string]string{}
	for i := 0; i < 60; i++ {
		r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post(fmt.Sprint(i))}, alice.AccessJwt)
		testpds.WantStatus(t, r, 200, "")
		uri := r.JSON()["uri"].(string)
		want["app.bsky.feed.post/"+uri[strings.LastIndex(uri, "/")+1:]] = r.JSON()["cid"].(string)
	}
	resp := p.Query("com.atproto.sync.getRepo", url.Values{"did": {alice.DID}}, "")
	testpds.WantStatus(t, resp, 200, "")
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.ipld.car" {
		t.Fatalf("content type %q", ct)
	}
	ctx := context.Background()
	commit, rp, err := repo.LoadRepoFromCAR(ctx, bytes.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	if commit.DID != alice.DID {
		t.Fatalf("commit DID %s", commit.DID)
	}
	data, err := (&plc.Client{URL: p.PLCURL}).GetDocumentData(ctx, alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := atcrypto.ParsePublicDIDKey(data.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := commit.VerifySignature(pub); err != nil {
		t.Fatalf("commit signature: %v", err)
	}
	// Rebuild the tree from the leaves alone.
	got := map[string]string{}
	tree := mst.NewEmptyTree()
	err = rp.MST.Walk(func(key []byte, val cid.Cid) error {
		got[string(key)] = val.String()
		_, err := tree.Insert(key, val)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	root, err := tree.RootCID()
	if err != nil {
		t.Fatal(err)
	}
	if *root != commit.Data {
		t.Fatalf("rebuilt MST root %s != commit data %s", root, commit.Data)
	}
	if len(got) != len(want) {
		t.Fatalf("records: got %d want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("record %s: got %s want %s", k, got[k], v)
		}
	}
	// Every block is present and hashes to its CID.
	rd, err := car.NewCarReader(bytes.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		blk, err := rd.Next()
		if err != nil {
			break
		}
		c2, err := blk.Cid().Prefix().Sum(blk.RawData())
		if err != nil || !c2.Equals(blk.Cid()) {
			t.Fatalf("block %s does not hash to its CID", blk.Cid())
		}
		n++
	}
	if n < 61 {
		t.Fatalf("only %d blocks", n)
	}

	// getLatestCommit, getRepoStatus, listRepos, getRecord proof, getBlocks.
	lc := p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {alice.DID}}, "")
	testpds.WantStatus(t, lc, 200, "")
	if lc.JSON()["rev"] != commit.Rev {
		t.Fatalf("getLatestCommit: %s vs rev %s", lc, commit.Rev)
	}
	rs := p.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {alice.DID}}, "")
	if rs.JSON()["active"] != true || rs.JSON()["rev"] != commit.Rev {
		t.Fatalf("getRepoStatus: %s", rs)
	}
	lrp := p.Query("com.atproto.sync.listRepos", nil, "")
	if repos := lrp.JSON()["repos"].([]any); len(repos) != 1 || repos[0].(map[string]any)["did"] != alice.DID {
		t.Fatalf("listRepos: %s", lrp)
	}
	var someKey string
	for k := range want {
		someKey = k
		break
	}
	coll, rkey, _ := strings.Cut(someKey, "/")
	proof := p.Query("com.atproto.sync.getRecord", url.Values{"did": {alice.DID}, "collection": {coll}, "rkey": {rkey}}, "")
	testpds.WantStatus(t, proof, 200, "")
	pc, _, err := repo.LoadCommitFromCAR(ctx, bytes.NewReader(proof.Body))
	if err != nil || pc.Data != commit.Data {
		t.Fatalf("record proof commit: %v", err)
	}
	gb := p.Query("com.atproto.sync.getBlocks", url.Values{"did": {alice.DID}, "cids": {want[someKey]}}, "")
	testpds.WantStatus(t, gb, 200, "")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getBlocks", url.Values{"did": {alice.DID}, "cids": {"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}}, ""), 400, "")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepo", url.Values{"did": {"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}}, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepo", url.Values{"did": {"not-a-did"}}, ""), 400, "InvalidRequest")
}

func TestResolveHandleAndWellKnown(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	r := p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"alice.test"}}, "")
	testpds.WantStatus(t, r, 200, "")
	if r.JSON()["did"] != alice.DID {
		t.Fatalf("resolveHandle: %s", r)
	}
	testpds.WantStatus(t, p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"nobody.test"}}, ""), 400, "HandleNotFound")

	req, _ := http.NewRequest(http.MethodGet, p.URL+"/.well-known/atproto-did", nil)
	req.Host = "alice.test"
	wk := p.Do(req, "")
	if wk.Status != 200 || string(wk.Body) != alice.DID {
		t.Fatalf("well-known: %s", wk)
	}
	req.Host = "nobody.test"
	if wk := p.Do(req, ""); wk.Status != 404 {
		t.Fatalf("well-known unknown: %s", wk)
	}
}
