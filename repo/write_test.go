package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

func TestCreateRepo(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	did := syntax.DID("did:plc:abcdefghijklmnopqrstuvwx")

	if _, err := s.Repo(ctx, did); !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("Repo before Create: %v", err)
	}
	if ok, _ := s.Exists(ctx, did); ok {
		t.Fatal("exists before create")
	}
	res, err := s.Create(ctx, did, key)
	if err != nil {
		t.Fatal(err)
	}
	checkEvent(t, res, nil, pubKey(t, key))
	if len(res.Event.Ops) != 0 || res.Since != nil || res.PrevData != nil {
		t.Fatalf("initial commit not empty: %+v", res)
	}
	if res.Data.String() != "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm" {
		t.Fatalf("empty tree root %s", res.Data)
	}
	if _, err := s.Create(ctx, did, key); !errors.Is(err, ErrRepoExists) {
		t.Fatalf("second Create: %v", err)
	}
	h := sha256.Sum256([]byte(did))
	matches, _ := filepath.Glob(filepath.Join(s.dir, hex.EncodeToString(h[:1]), did.String(), "repo.sqlite"))
	if len(matches) != 1 {
		t.Fatalf("repo file layout: %v", matches)
	}
	if ok, err := s.Exists(ctx, did); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	r, err := s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	hd := mustHead(t, r)
	if hd.Commit != res.Commit || hd.Rev != res.Rev || hd.Data != res.Data {
		t.Fatalf("head %+v != %+v", hd, res)
	}
	if n, _ := r.BlockCount(ctx); n != 2 {
		t.Fatalf("blocks after create = %d, want 2 (commit + empty node)", n)
	}
	r.Release()

	if err := s.Delete(ctx, did); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, did); ok {
		t.Fatal("exists after delete")
	}
	if _, err := os.Stat(filepath.Dir(matches[0])); !os.IsNotExist(err) {
		t.Fatalf("repo dir still there: %v", err)
	}
	if _, err := s.Repo(ctx, did); !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("Repo after Delete: %v", err)
	}
	if err := s.Delete(ctx, did); !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	// The DID can be created again.
	if _, err := s.Create(ctx, did, key); err != nil {
		t.Fatal(err)
	}

	// A head-less file (a Create that crashed) does not block a new Create.
	crashed := syntax.DID("did:plc:crashedcreate")
	p := s.repoPath(crashed)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(ctx, p, 1, time.Second, syncFull)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := s.Repo(ctx, crashed); !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("head-less repo: %v", err)
	}
	if _, err := s.Create(ctx, crashed, key); err != nil {
		t.Fatalf("Create over a head-less file: %v", err)
	}
	if err := s.With(ctx, crashed, func(r *Repo) error { _, err := r.Head(ctx); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestWritePath(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	pub := pubKey(t, key)
	r, first := createRepo(t, s, "did:plc:writepath", key)
	prev := &Head{Commit: first.Commit, Rev: first.Rev, Data: first.Data}

	apply := func(req WriteRequest) *CommitResult {
		t.Helper()
		req.Signer = key
		res, err := r.Apply(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.NoChange {
			checkEvent(t, res, prev, pub)
			prev = &Head{Commit: res.Commit, Rev: res.Rev, Data: res.Data}
		}
		h := mustHead(t, r)
		if *h != *prev {
			t.Fatalf("head %+v, want %+v", h, prev)
		}
		return res
	}
	applyErr := func(req WriteRequest, want error) {
		t.Helper()
		req.Signer = key
		before := mustHead(t, r)
		_, err := r.Apply(ctx, req)
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		if after := mustHead(t, r); *after != *before {
			t.Fatal("failed write moved the head")
		}
	}

	// Create.
	res := apply(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaaa2", "one", t), create("3kaaaaaaaaab2", "two", t)}})
	if len(res.Ops) != 2 || res.Ops[0].Action != ActionCreate || res.Ops[0].Prev != nil {
		t.Fatalf("ops %+v", res.Ops)
	}
	c1, v1, err := r.GetRecord(ctx, postNSID.String(), "3kaaaaaaaaaa2")
	if err != nil || !bytes.Equal(v1, recordCBOR(t, "one")) || c1 != cidOf(t, v1) || *res.Ops[0].CID != c1 {
		t.Fatalf("GetRecord: %v %s", err, c1)
	}

	// Update.
	res = apply(WriteRequest{Ops: []WriteOp{update("3kaaaaaaaaaa2", "one v2", t)}})
	if res.Ops[0].Action != ActionUpdate || *res.Ops[0].Prev != c1 {
		t.Fatalf("update op %+v", res.Ops[0])
	}
	// Update of a missing record is a create.
	res = apply(WriteRequest{Ops: []WriteOp{update("3kaaaaaaaaac2", "three", t)}})
	if res.Ops[0].Action != ActionCreate || res.Event.Ops[0].Action != "create" {
		t.Fatalf("upsert op %+v", res.Ops[0])
	}
	// Identical update: no commit.
	res = apply(WriteRequest{Ops: []WriteOp{update("3kaaaaaaaaac2", "three", t)}})
	if !res.NoChange || res.Event != nil || res.Commit != prev.Commit || res.Rev != prev.Rev {
		t.Fatalf("identical update: %+v", res)
	}
	// Identical update mixed with a real change: dropped from the event only.
	res = apply(WriteRequest{Ops: []WriteOp{update("3kaaaaaaaaac2", "three", t), create("3kaaaaaaaaad2", "four", t)}})
	if res.NoChange || len(res.Event.Ops) != 1 || res.Event.Ops[0].Path != "app.bsky.feed.post/3kaaaaaaaaad2" || len(res.Ops) != 2 {
		t.Fatalf("mixed: %+v", res.Event.Ops)
	}
	// Delete.
	res = apply(WriteRequest{Ops: []WriteOp{del("3kaaaaaaaaad2")}})
	if res.Ops[0].Action != ActionDelete || res.Ops[0].Prev == nil || res.Ops[0].CID != nil {
		t.Fatalf("delete op %+v", res.Ops[0])
	}
	if _, _, err := r.GetRecord(ctx, postNSID.String(), "3kaaaaaaaaad2"); !errors.Is(err, ErrRecordNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	// applyWrites-style batch over two collections.
	like := WriteOp{Action: ActionCreate, Collection: "app.bsky.feed.like", RKey: "3kaaaaaaaaaa2", Record: recordCBOR(t, "like")}
	apply(WriteRequest{Ops: []WriteOp{like, del("3kaaaaaaaaab2"), update("3kaaaaaaaaaa2", "one v3", t), create("3kaaaaaaaaae2", "five", t)}})
	cols, _ := r.Collections(ctx)
	if fmt.Sprint(cols) != "[app.bsky.feed.like app.bsky.feed.post]" {
		t.Fatalf("collections %v", cols)
	}
	if n, _ := r.RecordCount(ctx); n != 4 {
		t.Fatalf("record count %d", n)
	}

	// Swaps.
	cur, _, _ := r.GetRecord(ctx, postNSID.String(), "3kaaaaaaaaaa2")
	wrong := cidOf(t, []byte{0xa0})
	op := update("3kaaaaaaaaaa2", "swapped", t)
	op.SwapRecord = &Swap{CID: &wrong}
	applyErr(WriteRequest{Ops: []WriteOp{op}}, ErrInvalidSwap)
	op.SwapRecord = &Swap{CID: nil} // must not exist, but does
	applyErr(WriteRequest{Ops: []WriteOp{op}}, ErrInvalidSwap)
	op.SwapRecord = &Swap{CID: &cur}
	apply(WriteRequest{Ops: []WriteOp{op}})
	nop := create("3kaaaaaaaaaf2", "six", t)
	nop.SwapRecord = &Swap{CID: nil}
	apply(WriteRequest{Ops: []WriteOp{nop}})
	dop := del("3kaaaaaaaaae2")
	dop.SwapRecord = &Swap{CID: &wrong}
	applyErr(WriteRequest{Ops: []WriteOp{dop}}, ErrInvalidSwap)
	applyErr(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaag2", "x", t)}, SwapCommit: &first.Commit}, ErrInvalidSwap)
	headCommit := prev.Commit
	apply(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaag2", "x", t)}, SwapCommit: &headCommit})

	// Errors; none of them may change anything (applyErr checks the head).
	applyErr(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaaa2", "dup", t)}}, ErrRecordExists)
	applyErr(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaaz2", "ok", t), create("3kaaaaaaaaaa2", "dup", t)}}, ErrRecordExists)
	applyErr(WriteRequest{Ops: []WriteOp{del("3kaaaaaaaaazz")}}, ErrRecordNotFound)
	applyErr(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaah2", "a", t), update("3kaaaaaaaaah2", "b", t)}}, ErrInvalidWrite)
	applyErr(WriteRequest{Ops: []WriteOp{{Action: ActionCreate, Collection: "not an nsid", RKey: "x", Record: recordCBOR(t, "x")}}}, ErrInvalidWrite)
	applyErr(WriteRequest{Ops: []WriteOp{{Action: ActionCreate, Collection: postNSID, RKey: "..", Record: recordCBOR(t, "x")}}}, ErrInvalidWrite)
	applyErr(WriteRequest{Ops: []WriteOp{{Action: "upsert", Collection: postNSID, RKey: "x", Record: recordCBOR(t, "x")}}}, ErrInvalidWrite)
	applyErr(WriteRequest{Ops: []WriteOp{{Action: ActionCreate, Collection: postNSID, RKey: "x"}}}, ErrInvalidWrite)
	many := make([]WriteOp, MaxOps+1)
	for i := range many {
		many[i] = create(fmt.Sprintf("k%04d", i), "m", t)
	}
	applyErr(WriteRequest{Ops: many}, ErrTooManyOps)
	if _, err := r.Apply(ctx, WriteRequest{Ops: many[:1]}); !errors.Is(err, ErrInvalidWrite) {
		t.Fatalf("no signer: %v", err)
	}
	// Exactly 200 ops is fine.
	res = apply(WriteRequest{Ops: many[:MaxOps]})
	if len(res.Event.Ops) != MaxOps {
		t.Fatal("200 ops")
	}
	big := func(rkey string, n int) WriteOp {
		b, err := atdata.MarshalCBOR(map[string]any{"b": atdata.Bytes(bytes.Repeat([]byte{7}, n))})
		if err != nil {
			t.Fatal(err)
		}
		return WriteOp{Action: ActionCreate, Collection: postNSID, RKey: syntax.RecordKey(rkey), Record: b}
	}
	// Refused early (records alone too big) ...
	applyErr(WriteRequest{Ops: []WriteOp{big("big1", 1_000_000), big("big2", 1_000_000)}}, ErrTooLarge)
	// ... and after the tree was changed (records fit, records + MST + commit do not): the
	// in-memory tree must be restored.
	applyErr(WriteRequest{Ops: []WriteOp{big("big1", 1_000_000), big("big2", 999_950)}}, ErrTooLarge)
	if r.st != nil {
		t.Fatal("late ErrTooLarge must drop the in-memory tree (it was mutated)")
	}
	res = apply(WriteRequest{Ops: []WriteOp{create("3kaaaaaaaaai2", "after too large", t)}})
	if _, _, err := r.GetRecord(ctx, postNSID.String(), "big1"); !errors.Is(err, ErrRecordNotFound) {
		t.Fatal("too-large write leaked a record")
	}
	assertExactBlocks(t, r)
}

func TestRevMonotonicAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := newKey(t)
	did := syntax.DID("did:plc:reopen")

	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, did, key); err != nil {
		t.Fatal(err)
	}
	var last *CommitResult
	err = s.With(ctx, did, func(r *Repo) error {
		last, err = r.Apply(ctx, WriteRequest{Ops: []WriteOp{create("a", "a", t)}, Signer: key})
		if err != nil {
			return err
		}
		// Put the head rev 10 minutes in the future, as if the wall clock went backwards
		// since: the clock restored on reopen must still move forward from it.
		future := syntax.NewTID(time.Now().Add(10*time.Minute).UnixMicro(), 0).String()
		_, err = r.db.Exec("UPDATE head SET rev = ?", future)
		last.Rev = future
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.With(ctx, did, func(r *Repo) error {
		if n, _ := r.RecordCount(ctx); n != 1 {
			return fmt.Errorf("record count after reopen %d", n)
		}
		res, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create("b", "b", t)}, Signer: key})
		if err != nil {
			return err
		}
		if res.Rev <= last.Rev || *res.Since != last.Rev {
			return fmt.Errorf("rev %s since %v, previous %s", res.Rev, *res.Since, last.Rev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, first := createRepo(t, s, "did:plc:outbox", key)
	revs := []string{first.Rev}
	for i := range 5 {
		res, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create(fmt.Sprintf("r%d", i), "x", t)}, Signer: key})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, res.Rev)
	}
	evs, err := r.PendingEvents(ctx, "")
	if err != nil || len(evs) != 6 {
		t.Fatalf("pending %d %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.Rev != revs[i] {
			t.Fatalf("event %d rev %s want %s", i, ev.Rev, revs[i])
		}
		if _, err := r.db.Exec("SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if cid.Cid(evs[5].Commit) != mustHead(t, r).Commit {
		t.Fatal("last outbox event is not the head")
	}
	evs, _ = r.PendingEvents(ctx, revs[3])
	if len(evs) != 2 || evs[0].Rev != revs[4] {
		t.Fatalf("after %s: %d", revs[3], len(evs))
	}
	if err := r.TrimOutbox(ctx, revs[4]); err != nil {
		t.Fatal(err)
	}
	evs, _ = r.PendingEvents(ctx, "")
	if len(evs) != 1 || evs[0].Rev != revs[5] {
		t.Fatalf("after trim: %d", len(evs))
	}
}
