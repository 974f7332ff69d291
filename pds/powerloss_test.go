package pds_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/sequencer"
)

// Power loss cannot be caused in a test, but its effect on this server's files can: commits are stored in the
// repo without fsync (DeferSync) and acknowledged once their event is fsynced in the firehose log, so power
// loss may leave a repo file older than the log. These tests put an older copy of the repo file back, with the
// account still marked for recovery (a power loss never runs the clean stop that unmarks it), and restart.

// repoDirOf is where repo.Store keeps did's files (repo/store.go).
func repoDirOf(dataDir, did string) string {
	h := sha256.Sum256([]byte(did))
	return filepath.Join(dataDir, "actors", hex.EncodeToString(h[:1]), did)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// markDirty sets the recovery mark a power loss would have left set.
func markDirty(t *testing.T, dataDir, did string) {
	t.Helper()
	ctx := context.Background()
	seq, err := sequencer.Open(ctx, filepath.Join(dataDir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if err := seq.MarkDirty(ctx, syntax.DID(did)); err != nil {
		t.Fatal(err)
	}
}

func listPaths(t *testing.T, p *testpds.PDS, did, coll string) []string {
	t.Helper()
	r := p.Query("com.atproto.repo.listRecords", url.Values{"repo": {did}, "collection": {coll}, "limit": {"100"}}, "")
	if r.Status != 200 {
		t.Fatalf("listRecords: %s", r)
	}
	var out []string
	for _, rec := range r.JSON()["records"].([]any) {
		m := rec.(map[string]any)
		out = append(out, m["uri"].(string)+" "+m["cid"].(string))
	}
	sort.Strings(out)
	return out
}

func latestCommit(t *testing.T, p *testpds.PDS, did string) testpds.CommitRef {
	t.Helper()
	r := p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {did}}, "")
	if r.Status != 200 {
		t.Fatalf("getLatestCommit: %s", r)
	}
	m := r.JSON()
	return testpds.CommitRef{CID: m["cid"].(string), Rev: m["rev"].(string)}
}

// TestRecoveryReplaysCommitsTheRepoLost: acknowledged commits missing from the repo file come back from the log
// at start, with their original CIDs and signatures, and without new events; the next write chains to them.
func TestRecoveryReplaysCommitsTheRepoLost(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	plcURL := p.PLCURL
	acct := p.CreateAccount("powerloss")
	other := p.CreateAccount("bystander")
	w := testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "a", testpds.Note("a"))
	p.Stop()
	snapshot := filepath.Join(t.TempDir(), "repo")
	copyDir(t, repoDirOf(dataDir, acct.DID), snapshot)

	// The writes the repo file will lose: creates, an update, a delete, a multi-op commit; another account's
	// write in between.
	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	w = testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "b", testpds.Note("b"))
	testpds.NewWriter(t, p, other).Create(testpds.NoteCollection, "x", testpds.Note("x"))
	w.Put(testpds.NoteCollection, "a", testpds.Note("a, edited"))
	w.Delete(testpds.NoteCollection, "b")
	last := w.Apply(testpds.Note("batch"), "create "+testpds.NoteCollection+"/c", "create "+testpds.NoteCollection+"/d", "update "+testpds.NoteCollection+"/a")
	wantRecords := listPaths(t, p, acct.DID, testpds.NoteCollection)
	head := p.Server.FirehoseHead()
	p.Stop()

	copyDir(t, snapshot, repoDirOf(dataDir, acct.DID))
	markDirty(t, dataDir, acct.DID)

	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	if got := latestCommit(t, p, acct.DID); got != last {
		t.Fatalf("head after recovery %+v, want the last acknowledged commit %+v", got, last)
	}
	got := listPaths(t, p, acct.DID, testpds.NoteCollection)
	if len(got) != len(wantRecords) || len(got) != 3 {
		t.Fatalf("records after recovery %v, want %v", got, wantRecords)
	}
	for i := range got {
		if got[i] != wantRecords[i] {
			t.Fatalf("records after recovery %v, want %v", got, wantRecords)
		}
	}
	if h := p.Server.FirehoseHead(); h != head {
		t.Fatalf("recovery emitted events: head %d, was %d", h, head)
	}

	// The repo is whole again: a new write chains to the replayed head, and the stream verifies end to end.
	w = testpds.NewWriter(t, p, acct)
	_, next := w.Create(testpds.NoteCollection, "e", testpds.Note("e"))
	testpds.WaitHead(t, p, head+1)
	cc := testpds.NewCommitChecker(p)
	frames := testpds.SubscribeAt(t, p, 0).Take(int(head + 1))
	for _, f := range frames {
		cc.Check(t, f)
	}
	lastFrame := frames[len(frames)-1]
	if lastFrame.Commit == nil || lastFrame.Commit.Rev != next.Rev || *lastFrame.Commit.Since != last.Rev {
		t.Fatalf("the write after recovery does not chain to the replayed head %s", last.Rev)
	}
	r := p.Query("com.atproto.sync.getRepo", url.Values{"did": {acct.DID}}, "")
	if r.Status != 200 {
		t.Fatalf("getRepo: %s", r)
	}
	verifyRepoCAR(t, r.Body, acct.DID, 4)
	p.Stop()
}

// TestRecoveryWithoutTheLogAnnouncesSync: when the log cannot give back what a repo lost (its events are
// gone), the repo's head is announced with #sync so consumers resynchronize, and writes go on from there.
func TestRecoveryWithoutTheLogAnnouncesSync(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	plcURL := p.PLCURL
	acct := p.CreateAccount("lostlog")
	w := testpds.NewWriter(t, p, acct)
	_, kept := w.Create(testpds.NoteCollection, "a", testpds.Note("a"))
	p.Stop()
	snapshot := filepath.Join(t.TempDir(), "repo")
	copyDir(t, repoDirOf(dataDir, acct.DID), snapshot)

	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	w = testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "b", testpds.Note("b"))
	head := p.Server.FirehoseHead()
	p.Stop()

	copyDir(t, snapshot, repoDirOf(dataDir, acct.DID))
	markDirty(t, dataDir, acct.DID)
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "sequencer.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	// As pruning would (sequencer.Prune keeps the head in the meta row before deleting events).
	if _, err := db.Exec("INSERT INTO meta (key, value) VALUES ('head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", head); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM event WHERE seq = ?", head); err != nil {
		t.Fatal(err)
	}
	db.Close()

	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	if got := latestCommit(t, p, acct.DID); got != kept {
		t.Fatalf("head %+v, want the repo's own %+v", got, kept)
	}
	testpds.WaitHead(t, p, head+1)
	frames := testpds.SubscribeAt(t, p, head).Take(1)
	if s := frames[0].Sync; s == nil || s.Did != acct.DID || s.Rev != kept.Rev {
		t.Fatalf("event after recovery %+v, want #sync of %s at %s", frames[0], acct.DID, kept.Rev)
	}
	w = testpds.NewWriter(t, p, acct)
	if _, c := w.Create(testpds.NoteCollection, "c", testpds.Note("c")); c.Rev <= kept.Rev {
		t.Fatalf("rev after recovery %s not after %s", c.Rev, kept.Rev)
	}
	p.Stop()
}

// verifyRepoCAR loads a getRepo CAR with indigo and checks it holds n records under its commit's data root.
func verifyRepoCAR(t *testing.T, body []byte, did string, n int) {
	t.Helper()
	commit, rp, err := repo.LoadRepoFromCAR(context.Background(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if commit.DID != did {
		t.Fatalf("commit of %s", commit.DID)
	}
	root, err := rp.MST.RootCID()
	if err != nil || !root.Equals(commit.Data) {
		t.Fatalf("tree root %v (%v), commit data %s", root, err, commit.Data)
	}
	count := 0
	if err := rp.MST.Walk(func([]byte, cid.Cid) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("%d records in the CAR, want %d", count, n)
	}
}

// TestRecoveryAnnouncesUnloggedCommit: a commit stored without fsync and without an outbox row (DeferSync) that
// the process died before logging was never acknowledged; it stays in the repo and the stream gets a #sync
// of the repo's head, after which writes chain to it.
func TestRecoveryAnnouncesUnloggedCommit(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	plcURL := p.PLCURL
	acct := p.CreateAccount("unlogged")
	testpds.NewWriter(t, p, acct).Create(testpds.NoteCollection, "a", testpds.Note("a"))
	head := p.Server.FirehoseHead()
	p.Stop()

	markDirty(t, dataDir, acct.DID)
	unlogged := testpds.CreateOffline(t, dataDir, acct.DID, true, testpds.NoteCollection, "b", map[string]any{"$type": testpds.NoteCollection, "text": "unlogged"})

	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	testpds.WaitHead(t, p, head+1)
	frames := testpds.SubscribeAt(t, p, head).Take(1)
	if s := frames[0].Sync; s == nil || s.Did != acct.DID || s.Rev != unlogged.Rev {
		t.Fatalf("event after recovery %+v, want #sync of %s at %s", frames[0], acct.DID, unlogged.Rev)
	}
	if got := listPaths(t, p, acct.DID, testpds.NoteCollection); len(got) != 2 {
		t.Fatalf("records %v, want a and b", got)
	}
	_, next := testpds.NewWriter(t, p, acct).Create(testpds.NoteCollection, "c", testpds.Note("c"))
	testpds.WaitHead(t, p, head+2)
	f := testpds.SubscribeAt(t, p, head+1).Take(1)[0]
	if f.Commit == nil || f.Commit.Rev != next.Rev || f.Commit.Since == nil || *f.Commit.Since != unlogged.Rev {
		t.Fatalf("the write after recovery does not chain to the announced head %s: %+v", unlogged.Rev, f)
	}
	p.Stop()
}

// TestFailedRepoTransactionCatchesUp: a commit is logged while its repo transaction runs; if the transaction
// fails, the write answers with an error, the repo takes no write until it has replayed the logged commit, and
// the stream and the repo agree afterwards.
func TestFailedRepoTransactionCatchesUp(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	acct := p.CreateAccount("txfail")
	w := testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "a", testpds.Note("a"))

	db, err := sql.Open("sqlite", filepath.Join(repoDirOf(p.Config.DataDirectory, acct.DID), "repo.sqlite")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON records
		WHEN NEW.rkey IN ('b', 'c') BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": acct.DID, "collection": testpds.NoteCollection, "rkey": "b", "record": testpds.Note("b")}, acct.AccessJwt)
	if r.Status != 500 {
		t.Fatalf("write with a failing repo transaction: %s, want 500", r)
	}
	// The catch-up after the failure fails too (the trigger refuses the replay): the next write is refused
	// until the repo has the logged commit.
	r = p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": acct.DID, "collection": testpds.NoteCollection, "rkey": "d", "record": testpds.Note("d")}, acct.AccessJwt)
	if r.Status != 500 {
		t.Fatalf("write while the repo is behind: %s, want 500", r)
	}
	if _, err := db.Exec("DROP TRIGGER refuse"); err != nil {
		t.Fatal(err)
	}
	_, last := w.Create(testpds.NoteCollection, "e", testpds.Note("e"))

	// "b" was logged, so it stands; "d" never got past the check.
	got := listPaths(t, p, acct.DID, testpds.NoteCollection)
	if len(got) != 3 {
		t.Fatalf("records %v, want a, b, e", got)
	}
	head := p.Server.FirehoseHead()
	cc := testpds.NewCommitChecker(p)
	var revs []string
	for _, f := range testpds.SubscribeAt(t, p, 0).Take(int(head)) {
		cc.Check(t, f)
		if f.Commit != nil && f.Commit.Repo == acct.DID {
			revs = append(revs, f.Commit.Rev)
		}
	}
	if len(revs) != 4 || revs[3] != last.Rev {
		t.Fatalf("commits on the stream %v, want genesis, a, b, e", revs)
	}
	if got := latestCommit(t, p, acct.DID); got != last {
		t.Fatalf("head %+v, want %+v", got, last)
	}
}
