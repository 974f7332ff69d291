package repo

import (
	"context"
	"fmt"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// TestEmptiedTreeStaysCanonical: deleting every record (in one commit or with deletes before creates in the
// same commit) must leave a canonical empty tree, so later commits invert to their prevData. indigo keeps an
// emptied root at its old height, and keys inserted afterwards hung below empty layers.
func TestEmptiedTreeStaysCanonical(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := atcrypto.GeneratePrivateKeyK256()
	did := syntax.DID("did:plc:abcdefghijklmnopqrstuvwx")
	if _, err := st.Create(ctx, did, key); err != nil {
		t.Fatal(err)
	}
	r, err := st.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	rec, _ := atdata.MarshalCBOR(map[string]any{"$type": "com.example.record", "v": int64(1)})
	// A path of the given MST height, so the tree has several layers.
	pathOf := func(name string, height int) string {
		for n := 0; ; n++ {
			p := fmt.Sprintf("com.example.record/%s-%d", name, n)
			if mst.HeightForKey([]byte(p)) == height {
				return p
			}
		}
	}
	apply := func(writes ...string) {
		t.Helper()
		var ops []WriteOp
		for _, w := range writes {
			action, path := Action(w[:6]), w[7:]
			coll, rkey, _ := syntax.ParseRepoPath(path)
			op := WriteOp{Action: action, Collection: coll, RKey: rkey}
			if action != ActionDelete {
				op.Record = rec
			}
			ops = append(ops, op)
		}
		res, err := r.Apply(ctx, WriteRequest{Signer: key, Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := atrepo.VerifyCommitMessage(ctx, res.Event); err != nil {
			t.Fatalf("%v: %v", writes, err)
		}
		// The stored root is the canonical root of the records.
		canon := mst.NewEmptyTree()
		recs, _, err := r.ListRecords(ctx, "com.example.record", 1000, "", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range recs {
			c := x.CID
			if _, err := canon.Insert([]byte("com.example.record/"+x.RKey), c); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := canon.RootCID()
		if !res.Data.Equals(*want) {
			t.Fatalf("%v: data root %s, canonical %s", writes, res.Data, want)
		}
	}
	hi, lo1, lo2 := pathOf("hi", 2), pathOf("lo1", 0), pathOf("lo2", 0)
	apply("create "+hi, "create "+lo1)
	// The top-level key goes last: the root is then emptied in place.
	apply("delete "+lo1, "delete "+hi)
	apply("create " + lo1)
	apply("create " + lo2)
	// Emptied and refilled inside one commit.
	apply("create " + hi)
	apply("delete "+lo1, "delete "+lo2, "delete "+hi, "create "+pathOf("lo3", 0))
	apply("create " + lo1)
}
