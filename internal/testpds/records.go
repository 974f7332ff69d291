package testpds

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/repo"
)

// Records and writes: the bodies tests write, a writer through the XRPC API, and a write straight to the
// repository of a stopped server.

// Post is an app.bsky.feed.post record with text and a fixed createdAt.
func Post(text string) map[string]any {
	return map[string]any{"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-26T05:00:00.000Z"}
}

// Writer drives one account's writes through the XRPC API.
type Writer struct {
	t    testing.TB
	p    *PDS
	acct *Account
}

// CommitRef is the commit a write answered with.
type CommitRef struct {
	CID, Rev string
}

// call makes a write and fails the test unless it answers 200 with a commit.
func (w *Writer) call(nsid string, body map[string]any) (map[string]any, CommitRef) {
	w.t.Helper()
	body["repo"] = w.acct.DID
	r := w.p.Procedure(nsid, body, w.acct.AccessJwt)
	if r.Status != http.StatusOK {
		w.t.Fatalf("%s: %s", nsid, r)
	}
	out := r.JSON()
	cm, _ := out["commit"].(map[string]any)
	if cm == nil {
		w.t.Fatalf("%s: no commit in %s", nsid, r)
	}
	return out, CommitRef{cm["cid"].(string), cm["rev"].(string)}
}

// Create creates a record (rkey chosen) and returns its CID.
func (w *Writer) Create(coll, rkey string, rec map[string]any) (string, CommitRef) {
	out, c := w.call("com.atproto.repo.createRecord", map[string]any{"collection": coll, "rkey": rkey, "record": rec})
	return out["cid"].(string), c
}

// Put creates or replaces a record and returns its CID.
func (w *Writer) Put(coll, rkey string, rec map[string]any) (string, CommitRef) {
	out, c := w.call("com.atproto.repo.putRecord", map[string]any{"collection": coll, "rkey": rkey, "record": rec})
	return out["cid"].(string), c
}

// Delete deletes a record.
func (w *Writer) Delete(coll, rkey string) CommitRef {
	_, c := w.call("com.atproto.repo.deleteRecord", map[string]any{"collection": coll, "rkey": rkey})
	return c
}

// Apply runs applyWrites; each write is "create|update|delete coll/rkey".
func (w *Writer) Apply(rec map[string]any, writes ...string) CommitRef {
	w.t.Helper()
	return w.ApplyFn(func(string) map[string]any { return rec }, writes...)
}

// ApplyFn is Apply with a record per collection.
func (w *Writer) ApplyFn(recFor func(coll string) map[string]any, writes ...string) CommitRef {
	w.t.Helper()
	var ws []map[string]any
	for _, spec := range writes {
		action, path, _ := strings.Cut(spec, " ")
		coll, rkey, _ := strings.Cut(path, "/")
		m := map[string]any{"$type": "com.atproto.repo.applyWrites#" + action, "collection": coll, "rkey": rkey}
		if action != "delete" {
			m["value"] = recFor(coll)
		}
		ws = append(ws, m)
	}
	_, c := w.call("com.atproto.repo.applyWrites", map[string]any{"writes": ws})
	return c
}

// NoteCollection is an unknown collection: records keys are free, unlike app.bsky.feed.post's TIDs.
const NoteCollection = "com.example.post"

// Note is a record of NoteCollection.
func Note(text string) map[string]any {
	return map[string]any{"$type": NoteCollection, "text": text}
}

// WaitHead waits until the firehose head reaches seq: a write is acknowledged once durable in its repo, and
// sequenced (group commit) just after.
func WaitHead(t testing.TB, p *PDS, seq int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Server.FirehoseHead() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("firehose head %d, want %d", p.Server.FirehoseHead(), seq)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if h := p.Server.FirehoseHead(); h != seq {
		t.Fatalf("firehose head %d, want exactly %d", h, seq)
	}
}

// NewWriter writes as acct (with its access token) on p.
func NewWriter(t testing.TB, p *PDS, acct *Account) *Writer { return &Writer{t, p, acct} }

// GetRepoCAR downloads an account's repository (as its owner: deactivated repositories are not public).
func GetRepoCAR(t testing.TB, p *PDS, did, token string) []byte {
	t.Helper()
	r := p.Query("com.atproto.sync.getRepo", url.Values{"did": {did}}, token)
	WantStatus(t, r, 200, "")
	return r.Body
}

// CreateOffline creates a record in an account's repository in a stopped server's data directory, straight
// through the repo store with the account's key and nothing sequenced: the commit a crash between the two
// leaves unlogged. deferSync is repo.WriteRequest.DeferSync.
func CreateOffline(t testing.TB, dataDir, did string, deferSync bool, collection, rkey string, record map[string]any) *repo.CommitResult {
	t.Helper()
	ctx := context.Background()
	key := SigningKeyOf(t, dataDir, did)
	store, err := repo.OpenStore(filepath.Join(dataDir, "actors"), repo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Repo(ctx, syntax.DID(did))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := atdata.MarshalCBOR(record)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, repo.WriteRequest{Signer: key, DeferSync: deferSync, Ops: []repo.WriteOp{{
		Action: repo.ActionCreate, Collection: syntax.NSID(collection), RKey: syntax.RecordKey(rkey), Record: rec,
	}}})
	r.Release()
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res
}
