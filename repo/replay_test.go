package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// TestDurableConnectionRestored: an open repository's connections run synchronous=NORMAL (DeferSync commits
// need no more); a commit that must be durable on its own switches its connection to FULL and back.
func TestDurableConnectionRestored(t *testing.T) {
	s := newTestStore(t, StoreOptions{MaxConnsPerRepo: 1})
	r, _ := createRepo(t, s, "did:plc:defersync", newKey(t))
	ctx := context.Background()
	level := func() int {
		var l int
		if err := r.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := level(); l != 1 {
		t.Fatalf("synchronous = %d on an open repository, want 1 (NORMAL)", l)
	}
	for i := range 4 {
		if _, err := r.Apply(ctx, WriteRequest{Signer: newKey(t), DeferSync: i%2 == 0, Ops: []WriteOp{create(fmt.Sprint("r", i), "x", t)}}); err != nil {
			t.Fatal(err)
		}
		if l := level(); l != 1 {
			t.Fatalf("synchronous = %d after a commit (DeferSync %v), want 1 (NORMAL)", l, i%2 == 0)
		}
	}
	conn, err := r.durableConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var l int
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&l); err != nil || l != 2 {
		t.Fatalf("durableConn: synchronous = %d (%v), want 2 (FULL)", l, err)
	}
	conn.release(ctx)
}

// TestReplayCommits: a copy of a repository taken before some commits is brought to the same state by
// replaying those commits' events: same head, same records, exactly the right blocks (GC included).
func TestReplayCommits(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:replay")
	key := newKey(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := OpenStore(dirA, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ra, _ := createRepo(t, a, did, key)
	if _, err := ra.Apply(ctx, WriteRequest{Signer: key, Ops: []WriteOp{create("a", "a", t), create("b", "b", t)}}); err != nil {
		t.Fatal(err)
	}
	// Copy the repository as it is now (a checkpointed file: the copy a power loss could leave).
	if _, err := ra.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dirB, filepath.Base(filepath.Dir(a.repoDir(did))), did.String()), os.DirFS(a.repoDir(did))); err != nil {
		t.Fatal(err)
	}

	var events []*comatproto.SyncSubscribeRepos_Commit
	for i, ops := range [][]WriteOp{
		{create("c", "c", t)},
		{update("a", "a2", t), del("b")},
		{create("d", "same", t), create("e", "same", t)}, // one record CID at two paths
		{del("d")},
		{create("f", "f", t), update("c", "c2", t), del("a")},
	} {
		res, err := ra.Apply(ctx, WriteRequest{Signer: key, Ops: ops, DeferSync: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, res.Event)
	}
	want := mustHead(t, ra)

	b, err := OpenStore(dirB, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb, err := b.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Release()

	if _, err := rb.ReplayCommits(ctx, events[1:]); !errors.Is(err, ErrReplayGap) {
		t.Fatalf("replay with a missing commit: %v, want ErrReplayGap", err)
	}
	n, err := rb.ReplayCommits(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(events) {
		t.Fatalf("replayed %d of %d", n, len(events))
	}
	if got := mustHead(t, rb); *got != *want {
		t.Fatalf("head after replay %+v, want %+v", got, want)
	}
	assertExactBlocks(t, rb)
	if got, wantBlocks := storedBlocks(t, rb), storedBlocks(t, ra); len(got) != len(wantBlocks) {
		t.Fatalf("%d blocks after replay, the original has %d", len(got), len(wantBlocks))
	}
	for _, rkey := range []string{"c", "e", "f"} {
		ga, _, errA := ra.GetRecord(ctx, postNSID.String(), rkey)
		gb, _, errB := rb.GetRecord(ctx, postNSID.String(), rkey)
		if errA != nil || errB != nil || !ga.Equals(gb) {
			t.Fatalf("record %s: original %s %v, replayed %s %v", rkey, ga, errA, gb, errB)
		}
	}
	for _, rkey := range []string{"a", "b", "d"} {
		if _, _, err := rb.GetRecord(ctx, postNSID.String(), rkey); !errors.Is(err, ErrRecordNotFound) {
			t.Fatalf("deleted record %s after replay: %v", rkey, err)
		}
	}
	// Again: nothing to do. Then the writer goes on from the replayed head.
	if n, err := rb.ReplayCommits(ctx, events); err != nil || n != 0 {
		t.Fatalf("second replay: %d, %v", n, err)
	}
	res, err := rb.Apply(ctx, WriteRequest{Signer: key, Ops: []WriteOp{create("g", "g", t)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Since == nil || *res.Since != want.Rev || res.Rev <= want.Rev {
		t.Fatalf("commit after replay since %v rev %s; head was %s", res.Since, res.Rev, want.Rev)
	}
	checkEvent(t, res, want, pubKey(t, key))
}

// TestOnStagedFailureLeavesRepoBehind: a transaction that fails after OnStaged handed its commit out (to a log)
// leaves the repository refusing writes with ErrBehind until ReplayCommits brings it to that commit; the
// commit then stands as logged, and writes chain to it.
func TestOnStagedFailureLeavesRepoBehind(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:behind", key)
	var logged []*comatproto.SyncSubscribeRepos_Commit
	var outcomes []error
	req := func(rkey string) WriteRequest {
		return WriteRequest{Signer: key, DeferSync: true, Ops: []WriteOp{create(rkey, rkey, t)},
			OnStaged: func(res *CommitResult) func(error) {
				logged = append(logged, res.Event)
				return func(err error) { outcomes = append(outcomes, err) }
			}}
	}
	if _, err := r.Apply(ctx, req("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.db.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON records
		WHEN NEW.rkey = 'b' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, req("b")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("write b: %v, want the transaction's error", err)
	}
	if len(logged) != 2 || len(outcomes) != 2 || outcomes[0] != nil || outcomes[1] == nil {
		t.Fatalf("OnStaged saw %d commits, outcomes %v", len(logged), outcomes)
	}
	if _, err := r.Apply(ctx, req("c")); !errors.Is(err, ErrBehind) {
		t.Fatalf("write after the failure: %v, want ErrBehind", err)
	}
	if _, err := r.db.ExecContext(ctx, "DROP TRIGGER refuse"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReplayCommits(ctx, logged); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	head := *mustHead(t, r)
	if head.Rev != logged[1].Rev {
		t.Fatalf("head %s after replay, want the logged %s", head.Rev, logged[1].Rev)
	}
	res, err := r.Apply(ctx, req("c"))
	if err != nil {
		t.Fatal(err)
	}
	checkEvent(t, res, &head, pubKey(t, key))
	assertExactBlocks(t, r)
}

// TestOutboxTrimmedOnlyWhenItHoldsRows: outbox rows (the genesis's, non-DeferSync commits') are trimmed by the
// next commit through TrimOutboxThrough, including rows found at open; DeferSync commits add none, and the
// bookkeeping that skips the trim of an empty outbox does not lose a row that still needs one.
func TestOutboxTrimmedOnlyWhenItHoldsRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := newKey(t)
	did := syntax.DID("did:plc:outboxtrim")
	count := func(r *Repo) int {
		var n int
		if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	genesis, err := s.Create(ctx, did, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	if r.outboxMax != genesis.Rev || count(r) != 1 {
		t.Fatalf("at open: outboxMax %q, %d rows; want the genesis row %s", r.outboxMax, count(r), genesis.Rev)
	}
	durable, err := r.Apply(ctx, WriteRequest{Signer: key, Ops: []WriteOp{create("a", "a", t)}})
	if err != nil {
		t.Fatal(err)
	}
	if count(r) != 2 || r.outboxMax != durable.Rev {
		t.Fatalf("after a commit without DeferSync: %d rows, outboxMax %q", count(r), r.outboxMax)
	}
	// Trims through the genesis only: the other row stays, and so does the need to trim.
	if _, err := r.Apply(ctx, WriteRequest{Signer: key, DeferSync: true, TrimOutboxThrough: genesis.Rev, Ops: []WriteOp{create("b", "b", t)}}); err != nil {
		t.Fatal(err)
	}
	if count(r) != 1 || r.outboxMax != durable.Rev {
		t.Fatalf("after a partial trim: %d rows, outboxMax %q", count(r), r.outboxMax)
	}
	if _, err := r.Apply(ctx, WriteRequest{Signer: key, DeferSync: true, TrimOutboxThrough: durable.Rev, Ops: []WriteOp{create("c", "c", t)}}); err != nil {
		t.Fatal(err)
	}
	if count(r) != 0 || r.outboxMax != "" {
		t.Fatalf("after the full trim: %d rows, outboxMax %q", count(r), r.outboxMax)
	}
	r.Release()
	s.Close()
}
