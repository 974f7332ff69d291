package repo

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"
)

func benchRepo(b *testing.B, n int) (*Repo, func(int) string) {
	b.Helper()
	ctx := context.Background()
	s := newTestStore(b, StoreOptions{})
	key := newKey(b)
	r, _ := createRepo(b, s, "did:plc:bench", key)
	rk := func(i int) string { return fmt.Sprintf("3k%011d", i) }
	var ops []WriteOp
	for i := range n {
		ops = append(ops, create(rk(i), fmt.Sprint("record ", i), b))
		if len(ops) == MaxOps || i == n-1 {
			if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
				b.Fatal(err)
			}
			ops = nil
		}
	}
	return r, rk
}

// BenchmarkApplyCreate: one-op commit including signing and the SQLite fsync.
func BenchmarkApplyCreate(b *testing.B) {
	ctx := context.Background()
	r, _ := benchRepo(b, 1000)
	key := newKey(b)
	recs := make([]WriteOp, b.N)
	for i := range recs {
		recs[i] = create(fmt.Sprintf("b%08d", i), "bench", b)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Apply(ctx, WriteRequest{Ops: recs[i : i+1], Signer: key}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRecord(b *testing.B) {
	ctx := context.Background()
	r, rk := benchRepo(b, 2000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := r.GetRecord(ctx, postNSID.String(), rk(i%2000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteCAR(b *testing.B) {
	ctx := context.Background()
	r, _ := benchRepo(b, 2000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.WriteCAR(ctx, io.Discard, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMSTUpdate: applyTreeOps (one insert + diff + dead-node set) on a 10k-key tree.
func BenchmarkMSTUpdate(b *testing.B) {
	ctx := context.Background()
	tree := completeTree(mst.NewEmptyTree())
	v := cidOf(b, []byte{0xa0})
	var ops []treeOp
	for i := range 10000 {
		ops = append(ops, treeOp{path: fmt.Sprintf("app.bsky.feed.post/3k%011d", i), value: &v})
	}
	if _, err := applyTreeOps(ctx, &tree, ops); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		val := cidOf(b, []byte{0xa1, 0x61, 'v', byte(i)})
		if _, err := applyTreeOps(ctx, &tree, []treeOp{{path: fmt.Sprintf("app.bsky.feed.post/3k%011d", i%10000), value: &val}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordCID(b *testing.B) {
	rec := recordCBOR(b, "hello world, a typical short post")
	b.ResetTimer()
	var c cid.Cid
	for i := 0; i < b.N; i++ {
		c = cidOf(b, rec)
	}
	_ = c
}
