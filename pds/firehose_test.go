package pds_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/gorilla/websocket"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/sequencer"
)

func opsOf(f *testpds.Frame) []string {
	var out []string
	for _, op := range f.Commit.Ops {
		out = append(out, op.Action+" "+op.Path)
	}
	sort.Strings(out)
	return out
}

func sorted(xs ...string) []string {
	out := append([]string(nil), xs...)
	sort.Strings(out)
	return out
}

// TestFirehoseCommits subscribes over a real websocket, writes through the XRPC API (creates, updates, deletes,
// applyWrites batches, two accounts), and checks every event as a relay would.
func TestFirehoseCommits(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	live := testpds.Subscribe(t, p, "")
	cc := testpds.NewCommitChecker(p)
	var all []*testpds.Frame
	nextCommit := func(did string, c testpds.CommitRef, wantOps ...string) *testpds.Frame {
		t.Helper()
		f := live.Next()
		all = append(all, f)
		cc.Check(t, f)
		if f.Commit == nil || f.Commit.Repo != did {
			t.Fatalf("want a #commit of %s, got %s %s", did, f.Type, f.DID())
		}
		if cid.Cid(f.Commit.Commit).String() != c.CID || f.Commit.Rev != c.Rev {
			t.Fatalf("event names commit %s rev %s; the write returned %s rev %s", cid.Cid(f.Commit.Commit), f.Commit.Rev, c.CID, c.Rev)
		}
		if got, want := opsOf(f), sorted(wantOps...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ops %v, want %v", got, want)
		}
		return f
	}

	// Account creation: identity, account, commit, sync, in that order.
	alice := p.CreateAccount("alice")
	created := live.Take(4)
	all = append(all, created...)
	for i, want := range []string{"#identity", "#account", "#commit", "#sync"} {
		if created[i].Type != want || created[i].DID() != alice.DID {
			t.Fatalf("account creation event %d: %s of %s, want %s of %s", i, created[i].Type, created[i].DID(), want, alice.DID)
		}
		cc.Check(t, created[i])
	}
	if h := created[0].Identity.Handle; h == nil || *h != alice.Handle {
		t.Fatalf("#identity handle %v", h)
	}
	if a := created[1].Account; !a.Active || a.Status != nil {
		t.Fatalf("#account %+v", a)
	}
	if g := created[2].Commit; g.Since != nil || g.PrevData != nil || len(g.Ops) != 0 {
		t.Fatalf("genesis commit: since %v prevData %v ops %d", g.Since, g.PrevData, len(g.Ops))
	}
	if created[3].Sync.Rev != created[2].Commit.Rev {
		t.Fatalf("#sync rev %s, commit rev %s", created[3].Sync.Rev, created[2].Commit.Rev)
	}
	bob := p.CreateAccount("bob")
	for _, f := range live.Take(4) {
		all = append(all, f)
		cc.Check(t, f)
	}

	a := testpds.NewWriter(t, p, alice)
	b := testpds.NewWriter(t, p, bob)
	cid1, c := a.Create(testpds.NoteCollection, "p1", testpds.Note("one"))
	nextCommit(alice.DID, c, "create com.example.post/p1")
	cid2, c := a.Create(testpds.NoteCollection, "p2", testpds.Note("two"))
	nextCommit(alice.DID, c, "create com.example.post/p2")
	cid3, c := a.Create(testpds.NoteCollection, "p3", testpds.Note("three"))
	nextCommit(alice.DID, c, "create com.example.post/p3")
	_, c = b.Create(testpds.NoteCollection, "b1", testpds.Note("bob"))
	nextCommit(bob.DID, c, "create com.example.post/b1")

	cid1b, c := a.Put(testpds.NoteCollection, "p1", testpds.Note("one, edited"))
	f := nextCommit(alice.DID, c, "update com.example.post/p1")
	if op := f.Commit.Ops[0]; cid.Cid(*op.Prev).String() != cid1 || cid.Cid(*op.Cid).String() != cid1b {
		t.Fatalf("update op: prev %v cid %v, want %s -> %s", op.Prev, op.Cid, cid1, cid1b)
	}
	_, c = a.Put(testpds.NoteCollection, "p4", testpds.Note("four"))
	nextCommit(alice.DID, c, "create com.example.post/p4")
	c = a.Delete(testpds.NoteCollection, "p2")
	f = nextCommit(alice.DID, c, "delete com.example.post/p2")
	if op := f.Commit.Ops[0]; cid.Cid(*op.Prev).String() != cid2 {
		t.Fatalf("delete op prev %v, want %s", op.Prev, cid2)
	}
	c = a.Apply(testpds.Note("batch"), "create com.example.post/p5", "create com.example.post/p6",
		"update com.example.post/p1", "delete com.example.post/p3")
	f = nextCommit(alice.DID, c, "create com.example.post/p5", "create com.example.post/p6",
		"update com.example.post/p1", "delete com.example.post/p3")
	for _, op := range f.Commit.Ops {
		if op.Path == "com.example.post/p3" && cid.Cid(*op.Prev).String() != cid3 {
			t.Fatalf("batch delete prev %v, want %s", op.Prev, cid3)
		}
		if op.Path == "com.example.post/p1" && cid.Cid(*op.Prev).String() != cid1b {
			t.Fatalf("batch update prev %v, want %s", op.Prev, cid1b)
		}
	}
	// A full batch of 200 creates, then 200 deletes, interleaved with bob.
	var creates, deletes []string
	for i := range 200 {
		path := fmt.Sprintf("com.example.post/m%03d", i)
		creates, deletes = append(creates, "create "+path), append(deletes, "delete "+path)
	}
	c = a.Apply(testpds.Note("many"), creates...)
	nextCommit(alice.DID, c, creates...)
	_, c = b.Put(testpds.NoteCollection, "b1", testpds.Note("bob, edited"))
	nextCommit(bob.DID, c, "update com.example.post/b1")
	c = a.Apply(nil, deletes...)
	nextCommit(alice.DID, c, deletes...)
	// A no-op write (same record again) makes no commit and no event.
	if r := p.Procedure("com.atproto.repo.putRecord", map[string]any{"repo": bob.DID, "collection": testpds.NoteCollection, "rkey": "b1", "record": testpds.Note("bob, edited")}, bob.AccessJwt); r.Status != 200 {
		t.Fatalf("no-op put: %s", r)
	}
	live.ExpectQuiet(200 * time.Millisecond)

	// The last event of each account is its repo's head.
	for _, acct := range []*testpds.Account{alice, bob} {
		r := p.Query("com.atproto.sync.getLatestCommit", map[string][]string{"did": {acct.DID}}, "")
		if r.Status != 200 || r.JSON()["rev"] != cc.LastRev(acct.DID) {
			t.Fatalf("getLatestCommit %s: %s, last event rev %s", acct.Handle, r, cc.LastRev(acct.DID))
		}
	}
	if cc.Commits != 2+9+2 {
		t.Fatalf("checked %d commits", cc.Commits)
	}

	// Replay from 0 gives the same bytes, from seq 1.
	head := all[len(all)-1].Seq
	if all[0].Seq != 1 {
		t.Fatalf("first seq %d", all[0].Seq)
	}
	replay := testpds.SubscribeAt(t, p, 0).Take(int(head))
	for i, f := range replay {
		if !bytes.Equal(f.Raw, all[i].Raw) {
			t.Fatalf("replayed frame %d (seq %d) differs from the live one (seq %d)", i, f.Seq, all[i].Seq)
		}
	}
	// From the middle.
	mid := head / 2
	fromMid := testpds.SubscribeAt(t, p, mid)
	for _, want := range all[mid:] {
		if f := fromMid.Next(); !bytes.Equal(f.Raw, want.Raw) {
			t.Fatalf("replay from %d: got seq %d, want %d", mid, f.Seq, want.Seq)
		}
	}
	// From the head: nothing until the next write, which then arrives once.
	atHead := testpds.SubscribeAt(t, p, head)
	fromMid.ExpectQuiet(100 * time.Millisecond)
	_, c = b.Create(testpds.NoteCollection, "b2", testpds.Note("after replay"))
	nextCommit(bob.DID, c, "create com.example.post/b2")
	for _, s := range []*testpds.Subscriber{fromMid, atHead} {
		if f := s.Next(); f.Seq != head+1 || !bytes.Equal(f.Raw, all[len(all)-1].Raw) {
			t.Fatalf("after replay: seq %d, want %d", f.Seq, head+1)
		}
		s.ExpectQuiet(100 * time.Millisecond)
	}
	// From the future: error frame FutureCursor, then close 1008.
	future := testpds.SubscribeAt(t, p, head+10)
	if f := future.Next(); f.Op != -1 || f.ErrName != "FutureCursor" {
		t.Fatalf("future cursor: %+v", f)
	}
	if code := future.CloseCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("future cursor close code %d", code)
	}
	// Not a websocket: an XRPC error; a bad cursor: an XRPC error before any upgrade.
	testpds.WantStatus(t, p.Query("com.atproto.sync.subscribeRepos", nil, ""), 400, "InvalidRequest")
	if _, resp, err := websocket.DefaultDialer.Dial(testpds.FirehoseURL(p, "abc"), nil); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("cursor=abc: %v %v", resp, err)
	}
}

// fixtureKeyPath maps an interop MST key ("<letter><height>/<digits>") to a repo path with the same height and
// the same order, so the fixture's tree shapes (and so its proof cases) are reproduced through the write API.
func fixtureKeyPath(t *testing.T, key string) string {
	t.Helper()
	if _, _, err := syntax.ParseRepoPath(key); err == nil {
		return key // already a repo path (app.bsky records)
	}
	height := int(key[1] - '0')
	for n := 0; n < 100000; n++ {
		path := fmt.Sprintf("com.example.fixture/%s-%s-%d", key[:2], key[3:], n)
		if mst.HeightForKey([]byte(path)) == height {
			return path
		}
	}
	t.Fatalf("no path of height %d for %s", height, key)
	return ""
}

// TestFirehoseCommitProofFixtures reproduces the sync 1.1 commit-proof vectors' tree shapes through
// applyWrites and checks that each resulting #commit inverts (and carries exactly the proof's MST nodes).
func TestFirehoseCommitProofFixtures(t *testing.T) {
	raw, err := os.ReadFile("testdata/interop/firehose/commit-proof-fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []struct {
		Comment       string   `json:"comment"`
		Keys          []string `json:"keys"`
		Adds          []string `json:"adds"`
		Dels          []string `json:"dels"`
		BlocksInProof []string `json:"blocksInProof"`
	}
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 6 {
		t.Fatalf("%d fixtures", len(fixtures))
	}
	p := testpds.Start(t, testpds.Options{})
	acct := p.CreateAccount("fixtures")
	testpds.WaitHead(t, p, 4)
	live := testpds.Subscribe(t, p, "")
	cc := testpds.NewCommitChecker(p)
	w := testpds.NewWriter(t, p, acct)
	// One record value per collection (the fixtures use one leafValue; the tree shape depends on keys only).
	recFor := func(coll string) map[string]any {
		switch coll {
		case "app.bsky.feed.post":
			return map[string]any{"$type": coll, "text": "fixture", "createdAt": "2026-11-26T05:00:00.000Z"}
		case "app.bsky.feed.repost":
			return map[string]any{"$type": coll, "createdAt": "2026-11-26T05:00:00.000Z", "subject": map[string]any{
				"uri": "at://" + acct.DID + "/app.bsky.feed.post/3lo3kqqljmfe2",
				"cid": "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454",
			}}
		}
		return map[string]any{"$type": coll, "v": 1}
	}
	for _, fx := range fixtures {
		var setup, commit, cleanup []string
		present := map[string]bool{}
		for _, k := range fx.Keys {
			setup = append(setup, "create "+fixtureKeyPath(t, k))
			present[fixtureKeyPath(t, k)] = true
		}
		for _, k := range fx.Dels {
			commit = append(commit, "delete "+fixtureKeyPath(t, k))
			delete(present, fixtureKeyPath(t, k))
		}
		for _, k := range fx.Adds {
			commit = append(commit, "create "+fixtureKeyPath(t, k))
			present[fixtureKeyPath(t, k)] = true
		}
		for path := range present {
			cleanup = append(cleanup, "delete "+path)
		}
		for i, writes := range [][]string{setup, commit, cleanup} {
			w.ApplyFn(recFor, writes...)
			f := live.Next()
			cc.Check(t, f)
			if got, want := opsOf(f), sorted(writes...); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: ops %v, want %v", fx.Comment, got, want)
			}
			if i == 1 {
				// Blocks: the commit, the record (one CID for all keys) unless the commit only deletes, and the MST
				// nodes of the proof.
				nodes := testpds.CARBlockCount(t, f.Commit.Blocks) - 1
				if len(fx.Adds) > 0 {
					nodes--
				}
				if nodes != len(fx.BlocksInProof) {
					t.Errorf("%s: %d MST blocks in the event, the proof has %d", fx.Comment, nodes, len(fx.BlocksInProof))
				}
			}
		}
	}
}

// TestFirehoseReplayLiveSwitch connects replaying subscribers while writers write: each must get every event
// after its cursor exactly once, in order, byte-identical to a subscriber that was live from the start.
func TestFirehoseReplayLiveSwitch(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	var accts []*testpds.Account
	for i := range 4 {
		accts = append(accts, p.CreateAccount(fmt.Sprintf("writer%d", i)))
	}
	base := testpds.Subscribe(t, p, "")
	baseCol := testpds.Collect(base)
	// Enough events that a replay from 0 spans several pages.
	const perWriter = 200
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, acct := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := testpds.NewWriter(t, p, acct)
			for i := 0; i < perWriter && !stop.Load(); i++ {
				w.Create(testpds.NoteCollection, fmt.Sprintf("r%05d", i), testpds.Note("x"))
			}
		}()
	}
	// Subscribers join at different moments and cursors, during the writes.
	type joined struct {
		cursor int64
		col    *testpds.Collector
	}
	var subs []joined
	for i := range 8 {
		time.Sleep(150 * time.Millisecond)
		cursor := int64(0)
		if i%2 == 1 {
			cursor = p.Server.FirehoseHead() / 2
		}
		subs = append(subs, joined{cursor, testpds.Collect(testpds.SubscribeAt(t, p, cursor))})
	}
	wg.Wait()
	const head = 4*4 + 4*perWriter
	testpds.WaitHead(t, p, head)
	want := baseCol.WaitSeq(t, head)
	// The live subscriber joined after the 16 account-creation events.
	byseq := map[int64][]byte{}
	for i, f := range want {
		if i > 0 && f.Seq != want[i-1].Seq+1 {
			t.Fatalf("live subscriber: seq %d after %d", f.Seq, want[i-1].Seq)
		}
		byseq[f.Seq] = f.Raw
	}
	for _, s := range subs {
		got := s.col.WaitSeq(t, head)
		if got[0].Seq != s.cursor+1 {
			t.Fatalf("cursor %d: first seq %d", s.cursor, got[0].Seq)
		}
		for i, f := range got {
			if f.Seq != s.cursor+1+int64(i) {
				t.Fatalf("cursor %d: frame %d has seq %d (gap or duplicate)", s.cursor, i, f.Seq)
			}
			if b, ok := byseq[f.Seq]; ok && !bytes.Equal(b, f.Raw) {
				t.Fatalf("cursor %d: seq %d differs from the live frame", s.cursor, f.Seq)
			}
		}
		if len(got) != int(head-s.cursor) {
			t.Fatalf("cursor %d: %d frames, want %d", s.cursor, len(got), head-s.cursor)
		}
	}
}

// TestFirehoseRetention prunes old events: a cursor older than the window gets #info OutdatedCursor, then the
// oldest kept event; seq continues from the head after pruning and after a restart.
func TestFirehoseRetention(t *testing.T) {
	const window = 1500 * time.Millisecond
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir, Env: map[string]string{"PDS_REPO_BACKFILL_LIMIT_MS": fmt.Sprint(window.Milliseconds())}})
	acct := p.CreateAccount("old")
	w := testpds.NewWriter(t, p, acct)
	for i := range 5 {
		w.Create(testpds.NoteCollection, fmt.Sprintf("old%d", i), testpds.Note("old"))
	}
	const oldHead = 9 // 4 account events + 5 commits
	testpds.WaitHead(t, p, oldHead)
	seqDB := filepath.Join(dataDir, "sequencer.sqlite")
	// Wait for the retention loop to prune them all.
	deadline := time.Now().Add(10 * time.Second)
	for countEvents(t, seqDB) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("old events not pruned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, c := w.Create(testpds.NoteCollection, "new0", testpds.Note("new"))
	_, _ = w.Create(testpds.NoteCollection, "new1", testpds.Note("new"))
	s := testpds.SubscribeAt(t, p, 0)
	if f := s.Next(); f.Info == nil || f.Info.Name != "OutdatedCursor" {
		t.Fatalf("want #info OutdatedCursor, got %s", f.Type)
	}
	f := s.Next()
	if f.Seq != oldHead+1 || f.Commit == nil || f.Commit.Rev != c.Rev {
		t.Fatalf("after OutdatedCursor: seq %d, want the oldest kept %d", f.Seq, oldHead+1)
	}
	if f := s.Next(); f.Seq != oldHead+2 {
		t.Fatalf("next seq %d", f.Seq)
	}
	// A cursor inside the window gets no #info.
	inside := testpds.SubscribeAt(t, p, oldHead+1)
	if f := inside.Next(); f.Seq != oldHead+2 {
		t.Fatalf("cursor inside the window: %s seq %d", f.Type, f.Seq)
	}

	// Everything pruned again, then a restart: seq continues.
	for countEvents(t, seqDB) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("events not pruned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: p.PLCURL, Env: map[string]string{"PDS_REPO_BACKFILL_LIMIT_MS": fmt.Sprint(window.Milliseconds())}})
	testpds.WaitHead(t, p, oldHead+2)
	live := testpds.Subscribe(t, p, "")
	w = testpds.NewWriter(t, p, acct)
	_, c = w.Create(testpds.NoteCollection, "after-restart", testpds.Note("new"))
	if f := live.Next(); f.Seq != oldHead+3 || f.Commit.Rev != c.Rev {
		t.Fatalf("after restart: seq %d, want %d", f.Seq, oldHead+3)
	}
}

func countEvents(t *testing.T, path string) int {
	t.Helper()
	db, err := sqlOpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM event").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFirehoseSlowConsumer stalls one subscriber (it never reads) while another keeps up: the stalled one
// gets ConsumerTooSlow and is closed; the healthy one gets every event, in order.
func TestFirehoseSlowConsumer(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_MAX_SUBSCRIPTION_BUFFER": "2"}})
	acct := p.CreateAccount("big")
	testpds.WaitHead(t, p, 4)
	const start = 4
	// The stalled client: a small receive buffer, so the kernel absorbs less.
	dialer := websocket.Dialer{NetDialContext: smallBufferDial, ReadBufferSize: 1024}
	conn, _, err := dialer.Dial(testpds.FirehoseURL(p, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	stalled := testpds.NewSubscriber(t, conn)
	healthy := testpds.Collect(testpds.Subscribe(t, p, ""))
	for p.Server.FirehoseSubscribers() != 2 {
		time.Sleep(time.Millisecond)
	}
	// Large records fill the socket buffers; write until the server drops the stalled subscriber (it must
	// then read soon: the server also drops a peer that blocks one write for 15 s).
	w := testpds.NewWriter(t, p, acct)
	big := strings.Repeat("x", 300_000)
	n := 0
	for p.Server.FirehoseSubscribers() == 2 {
		if n == 200 {
			t.Fatal("200 large events and the stalled subscriber is still subscribed")
		}
		w.Create("com.example.big", fmt.Sprintf("b%03d", n), map[string]any{"$type": "com.example.big", "data": big})
		n++
		time.Sleep(5 * time.Millisecond) // let the sequencer publish
	}
	// Read the stalled one: a prefix of the events, then the error frame, then close 1008.
	var seqs []int64
	for {
		f, err := stalled.Read(20 * time.Second)
		if err != nil {
			t.Fatalf("stalled subscriber after %d events: %v (want an error frame)", len(seqs), err)
		}
		if f.Op == -1 {
			if f.ErrName != "ConsumerTooSlow" {
				t.Fatalf("error frame %q", f.ErrName)
			}
			break
		}
		seqs = append(seqs, f.Seq)
	}
	if len(seqs) >= n {
		t.Fatalf("stalled subscriber got all %d events before ConsumerTooSlow", len(seqs))
	}
	for i, s := range seqs {
		if s != start+1+int64(i) {
			t.Fatalf("stalled subscriber: event %d has seq %d", i, s)
		}
	}
	if code := stalled.CloseCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d", code)
	}
	// The healthy one got everything, and stays subscribed.
	w.Create("com.example.big", "last", map[string]any{"$type": "com.example.big", "data": "small"})
	n++
	got := healthy.WaitSeq(t, int64(start+n))
	for i, f := range got {
		if f.Seq != start+1+int64(i) {
			t.Fatalf("healthy subscriber: frame %d has seq %d", i, f.Seq)
		}
	}
	if len(got) != n {
		t.Fatalf("healthy subscriber got %d events, want %d", len(got), n)
	}
	t.Logf("stalled subscriber got %d of %d events before ConsumerTooSlow", len(seqs), n)
}

// TestFirehoseShutdown: Shutdown closes subscribers with 1001 (going away) and returns promptly, also with a
// subscriber that stopped reading while megabytes are on their way to it.
func TestFirehoseShutdown(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	s1 := testpds.Subscribe(t, p, "")
	s2 := testpds.SubscribeAt(t, p, 0)
	dialer := websocket.Dialer{NetDialContext: smallBufferDial, ReadBufferSize: 1024}
	stalledConn, _, err := dialer.Dial(testpds.FirehoseURL(p, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalledConn.Close()
	acct := p.CreateAccount("stop")
	w := testpds.NewWriter(t, p, acct)
	big := strings.Repeat("x", 300_000)
	for i := range 25 {
		w.Create("com.example.big", fmt.Sprintf("b%02d", i), map[string]any{"$type": "com.example.big", "data": big})
	}
	testpds.WaitHead(t, p, 4+25)
	for _, s := range []*testpds.Subscriber{s1, s2} {
		s.Take(4 + 25)
	}
	done := make(chan struct{})
	go func() {
		p.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5 s with subscribers connected")
	}
	for _, s := range []*testpds.Subscriber{s1, s2} {
		if code := s.CloseCode(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
}

// TestFirehoseRecoversUnsequencedCommit simulates a crash between a repo commit and its sequencing: the commit
// is written through the repo store with the account marked dirty and never enqueued. At the next start it
// must reach the stream exactly once, after the account's earlier commits and before later ones.
func TestFirehoseRecoversUnsequencedCommit(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	acct := p.CreateAccount("crash")
	w := testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "before", testpds.Note("before"))
	plcURL := p.PLCURL
	p.Stop()

	// The "crashed" write.
	ctx := context.Background()
	seq, err := sequencer.Open(ctx, filepath.Join(dataDir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	headBefore := seq.Head()
	if err := seq.MarkDirty(ctx, syntax.DID(acct.DID)); err != nil {
		t.Fatal(err)
	}
	seq.Close()
	lost := testpds.CreateOffline(t, dataDir, acct.DID, false, "com.example.lost", "lost", map[string]any{"$type": "com.example.lost", "v": int64(1)})

	// Restart twice: recovery sequences the lost commit once.
	for range 2 {
		p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
		p.Stop()
	}
	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	w = testpds.NewWriter(t, p, acct)
	_, after := w.Create(testpds.NoteCollection, "after", testpds.Note("after"))
	head := headBefore + 2 // the recovered commit and the new one
	testpds.WaitHead(t, p, head)
	cc := testpds.NewCommitChecker(p)
	frames := testpds.SubscribeAt(t, p, 0).Take(int(head))
	var revs []string
	for _, f := range frames {
		cc.Check(t, f)
		if f.Commit != nil && f.Commit.Repo == acct.DID {
			revs = append(revs, f.Commit.Rev)
		}
	}
	// genesis, "before", the recovered one, "after".
	if len(revs) != 4 || revs[2] != lost.Rev || revs[3] != after.Rev {
		t.Fatalf("commit revs on the stream %v; want the lost %s then %s last", revs, lost.Rev, after.Rev)
	}
	if f := frames[len(frames)-2]; f.Commit == nil || cid.Cid(f.Commit.Commit) != lost.Commit {
		t.Fatalf("recovered event is not the lost commit")
	}
}

// TestCrawlers: a fake relay (the real requestCrawl endpoint on loopback) is asked to crawl at start and
// again after new activity, never more often than the interval.
func TestCrawlers(t *testing.T) {
	type call struct {
		at       time.Time
		hostname string
	}
	var mu sync.Mutex
	var calls []call
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/xrpc/com.atproto.sync.requestCrawl" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, `{"error":"InvalidRequest"}`, 400)
			return
		}
		var body struct {
			Hostname string `json:"hostname"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":"InvalidRequest"}`, 400)
			return
		}
		mu.Lock()
		calls = append(calls, call{time.Now(), body.Hostname})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	}))
	defer relay.Close()
	snapshot := func() []call {
		mu.Lock()
		defer mu.Unlock()
		return append([]call(nil), calls...)
	}
	waitCalls := func(n int) []call {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c := snapshot(); len(c) >= n {
				return c
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("relay got %d requestCrawl calls, want %d", len(snapshot()), n)
		return nil
	}
	const interval = 600 * time.Millisecond
	p := testpds.Start(t, testpds.Options{
		Env:                 map[string]string{"PDS_CRAWLERS": relay.URL + "/, http://127.0.0.1:1"}, // the second one is down
		CrawlNotifyInterval: interval,
	})
	// At start.
	c := waitCalls(1)
	if want := strings.TrimPrefix(p.URL, "http://"); c[0].hostname != want {
		t.Fatalf("requestCrawl hostname %q, want %q", c[0].hostname, want)
	}
	// Activity: a call, at the earliest one interval after the previous one.
	acct := p.CreateAccount("crawl")
	c = waitCalls(2)
	if gap := c[1].at.Sub(c[0].at); gap < interval-50*time.Millisecond {
		t.Fatalf("second call %v after the first; interval %v", gap, interval)
	}
	// Activity right after a call is not lost: one more call when the interval ends, not before.
	w := testpds.NewWriter(t, p, acct)
	w.Create(testpds.NoteCollection, "a", testpds.Note("a"))
	w.Create(testpds.NoteCollection, "b", testpds.Note("b"))
	c = waitCalls(3)
	if gap := c[2].at.Sub(c[1].at); gap < interval-50*time.Millisecond || gap > interval+500*time.Millisecond {
		t.Fatalf("third call %v after the second; interval %v", gap, interval)
	}
	// No activity: no calls.
	time.Sleep(2 * interval)
	if n := len(snapshot()); n != 3 {
		t.Fatalf("%d calls, want 3: calls without activity", n)
	}
	// Activity after a quiet period: a prompt call.
	t0 := time.Now()
	w.Create(testpds.NoteCollection, "c", testpds.Note("c"))
	c = waitCalls(4)
	if d := c[3].at.Sub(t0); d > interval/2 {
		t.Fatalf("call after activity came %v after the write", d)
	}
}

// smallBufferDial dials with a small socket receive buffer, so a stalled reader fills up quickly.
func smallBufferDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	d.Control = func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192)
		})
		return serr
	}
	return d.DialContext(ctx, network, addr)
}

// TestFirehoseKeepAlive: the server pings, answers the client's pings, and drops a peer that answers nothing
// for three ping intervals.
func TestFirehoseKeepAlive(t *testing.T) {
	t.Cleanup(pds.SetFirehoseKeepAliveForTest(100 * time.Millisecond)) // runs after the server stops
	p := testpds.Start(t, testpds.Options{})
	c := testpds.Subscribe(t, p, "")
	var pings atomic.Int32
	pong := make(chan string, 1)
	c.Conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.Conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	c.Conn.SetPongHandler(func(data string) error {
		pong <- data
		return nil
	})
	if err := c.Conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.Start()
	select {
	case data := <-pong:
		if data != "hello" {
			t.Fatalf("pong %q", data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	// An answering client stays connected across several read timeouts.
	c.ExpectQuiet(time.Second)
	if n := pings.Load(); n < 3 {
		t.Fatalf("%d pings in a second at a 100 ms interval", n)
	}
	// A peer that completes the handshake and then reads nothing (so answers no ping) is dropped.
	dead, _, err := websocket.DefaultDialer.Dial(testpds.FirehoseURL(p, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	testpds.WaitUntil(t, 5*time.Second, "two subscribers", func() bool { return p.Server.FirehoseSubscribers() == 2 })
	testpds.WaitUntil(t, 5*time.Second, "the silent peer dropped", func() bool { return p.Server.FirehoseSubscribers() == 1 })
}

// sqlOpenReadOnly opens a SQLite file read-only beside the running server (WAL allows it).
func sqlOpenReadOnly(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
}
