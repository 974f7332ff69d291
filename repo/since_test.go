package repo

import (
	"context"
	"testing"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

func TestRecordsSince(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, genesis := createRepo(t, s, "did:plc:since", key)
	apply := func(ops ...WriteOp) *CommitResult {
		t.Helper()
		res, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// No records at all: nothing is "since" anything.
	if got, err := r.RecordsSince(ctx, genesis.Rev, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty repo: %v %v", got, err)
	}
	c1 := apply(create("a", "one", t), create("z", "stays", t))
	c2 := apply(create("b", "two", t), WriteOp{Action: ActionCreate, Collection: syntax.NSID("app.bsky.feed.like"),
		RKey: "l1", Record: recordCBOR(t, "like")})
	c3 := apply(update("a", "one again", t))

	// Since c1: b (c2), the like (c2), and a (rewritten by c3), oldest first; z is as old as c1.
	got, err := r.RecordsSince(ctx, c1.Rev, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Rev != c2.Rev || got[1].Rev != c2.Rev || got[2].RKey != "a" || got[2].Rev != c3.Rev {
		t.Fatalf("since c1: %+v", got)
	}
	// Collection filter and limit.
	got, err = r.RecordsSince(ctx, c1.Rev, 10, "app.bsky.feed.post")
	if err != nil || len(got) != 2 || got[0].RKey != "b" || got[1].RKey != "a" {
		t.Fatalf("posts since c1: %+v %v", got, err)
	}
	if _, data, err := r.GetRecord(ctx, "app.bsky.feed.post", "a"); err != nil || string(got[1].Value) != string(data) || got[1].CID != cidOf(t, data) {
		t.Fatalf("record value/CID do not match the stored record: %v", err)
	}
	got, err = r.RecordsSince(ctx, c1.Rev, 1, "app.bsky.feed.post")
	if err != nil || len(got) != 1 || got[0].RKey != "b" {
		t.Fatalf("limit 1: %+v %v", got, err)
	}
	// Up to date: nothing.
	if got, err := r.RecordsSince(ctx, c3.Rev, 10); err != nil || len(got) != 0 {
		t.Fatalf("since head: %+v %v", got, err)
	}
	// A rev older than every record (not from this history, e.g. an imported account): nothing.
	if got, err := r.RecordsSince(ctx, "2222222222222", 10); err != nil || len(got) != 0 {
		t.Fatalf("foreign rev: %+v %v", got, err)
	}
}
