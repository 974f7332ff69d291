package repo

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	gocar "github.com/ipld/go-car"
	"github.com/multiformats/go-multihash"

	"github.com/pdsgo/pds/repo/car"
)

// referenceCAR is the export order spelled out one block at a time: the commit, then each MST node followed
// by its left subtree and, per entry, the record (first time its CID is seen) and the right subtree.
func referenceCAR(t *testing.T, r *Repo) []byte {
	t.Helper()
	ctx := context.Background()
	head := mustHead(t, r)
	var buf bytes.Buffer
	cw, err := car.NewWriter(&buf, head.Commit)
	if err != nil {
		t.Fatal(err)
	}
	put := func(c cid.Cid) []byte {
		data, err := getBlock(ctx, r.db, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := cw.Put(c, data); err != nil {
			t.Fatal(err)
		}
		return data
	}
	put(head.Commit)
	seen := map[cid.Cid]bool{}
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		nd, err := mst.NodeDataFromCBOR(bytes.NewReader(put(c)))
		if err != nil {
			t.Fatal(err)
		}
		if nd.Left != nil {
			walk(*nd.Left)
		}
		for _, e := range nd.Entries {
			if !seen[e.Value] {
				seen[e.Value] = true
				put(e.Value)
			}
			if e.Right != nil {
				walk(*e.Right)
			}
		}
	}
	walk(head.Data)
	return buf.Bytes()
}

// TestWriteCARMatchesReferenceOrder: the batched export is byte for byte the block-by-block walk, with
// collections where one NSID is a prefix of another (key order is not collection order), one record CID at
// many paths, and with a records index that disagrees with the tree (the export must still follow the tree).
func TestWriteCARMatchesReferenceOrder(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:carorder", key)
	collections := []syntax.NSID{"com.example.a", "com.example.a.b", "com.example.ab", "app.bsky.feed.post"}
	var ops []WriteOp
	for i := range 1200 {
		text := fmt.Sprint("record ", i)
		if i%7 == 0 {
			text = "same" // one CID at many paths
		}
		ops = append(ops, WriteOp{Action: ActionCreate, Collection: collections[i%len(collections)],
			RKey: syntax.RecordKey(fmt.Sprintf("3k%011d", i*7919%100000)), Record: recordCBOR(t, text)})
		if len(ops) == MaxOps {
			if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	check := func(what string, consistent bool) {
		t.Helper()
		var got bytes.Buffer
		var stats exportStats
		err := r.readSnapshot(ctx, func(q *cachedTx) error {
			cw, err := car.NewWriter(&got, mustHead(t, r).Commit)
			if err != nil {
				return err
			}
			stats, err = writeFullCAR(ctx, q, cw, *mustHead(t, r))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		blocks := must(r.BlockCount(ctx))
		t.Logf("%s: %d blocks, %d queries, %d records read alone", what, blocks, stats.queries, stats.alone)
		if (stats.alone == 0) != consistent {
			t.Errorf("%s: %d records read alone", what, stats.alone)
		}
		if int64(stats.queries) > blocks/3 {
			t.Errorf("%s: %d queries for %d blocks", what, stats.queries, blocks)
		}
		var viaAPI bytes.Buffer
		if err := r.WriteCAR(ctx, &viaAPI, ""); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaAPI.Bytes(), got.Bytes()) {
			t.Fatal("WriteCAR differs from writeFullCAR")
		}
		want := referenceCAR(t, r)
		if !bytes.Equal(got.Bytes(), want) {
			_, gb := readCAR(t, got.Bytes())
			_, wb := readCAR(t, want)
			for i := range min(len(gb), len(wb)) {
				if gb[i].Cid() != wb[i].Cid() {
					t.Fatalf("%s: block %d is %s, want %s (%d vs %d blocks)", what, i, gb[i].Cid(), wb[i].Cid(), len(gb), len(wb))
				}
			}
			t.Fatalf("%s: CARs differ (%d vs %d blocks)", what, len(gb), len(wb))
		}
	}
	check("consistent index", true)

	// Rows missing from, or extra in, the records index: the export reads those records alone.
	for _, q := range []string{
		"DELETE FROM records WHERE collection = 'com.example.a.b' AND rkey IN (SELECT rkey FROM records WHERE collection = 'com.example.a.b' LIMIT 3)",
		"INSERT INTO records (collection, rkey, cid, rev) SELECT 'com.example.a', 'zzextra', cid, rev FROM records LIMIT 1",
		"UPDATE records SET cid = (SELECT commit_cid FROM head) WHERE collection = 'com.example.ab' AND rkey = '3k00000015838'", // record 2
	} {
		res, err := r.db.ExecContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("no row changed: %s", q)
		}
	}
	check("inconsistent index", false)
}

// TestGetBlocksBatches: more CIDs than the largest prepared IN list, some missing.
func TestGetBlocksBatches(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:batches", key)
	var ops []WriteOp
	for i := range 150 {
		ops = append(ops, create(fmt.Sprintf("r%04d", i), fmt.Sprint(i), t))
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
		t.Fatal(err)
	}
	var cids []cid.Cid
	for i := range 150 {
		c, _, err := r.GetRecord(ctx, postNSID.String(), fmt.Sprintf("r%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
	}
	absent := cidOf(t, []byte{0xa0})
	cids = append(cids, absent)
	err := r.readSnapshot(ctx, func(q *cachedTx) error {
		w := &carWalk{ctx: ctx, q: q}
		got, err := w.getBlocks(cids)
		if err != nil {
			return err
		}
		if len(got) != 150 {
			return fmt.Errorf("%d blocks, want 150", len(got))
		}
		for _, c := range cids[:150] {
			if cidOf(t, got[c]) != c {
				return fmt.Errorf("block %s wrong", c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCARHeaderMatchesGoCar: the hand-written CAR header is byte for byte what go-car writes, for the usual
// CIDs (sha2-256 dag-cbor and raw) and for CIDs long enough to need a two-byte CBOR length.
func TestCARHeaderMatchesGoCar(t *testing.T) {
	var roots []cid.Cid
	for _, p := range []cid.Prefix{
		cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_256),
		cid.NewPrefixV1(cid.Raw, multihash.SHA2_256),
		cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_512),
		{Version: 1, Codec: cid.DagCBOR, MhType: multihash.IDENTITY, MhLength: -1},
	} {
		for _, data := range [][]byte{[]byte("x"), bytes.Repeat([]byte("y"), 300)} {
			c, err := p.Sum(data)
			if err != nil {
				t.Fatal(err)
			}
			roots = append(roots, c)
		}
	}
	for _, root := range roots {
		var want bytes.Buffer
		if err := gocar.WriteHeader(&gocar.CarHeader{Roots: []cid.Cid{root}, Version: 1}, &want); err != nil {
			t.Fatal(err)
		}
		if got := car.Header(root); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s (%d bytes): header\n%x, go-car\n%x", root, len(root.Bytes()), got, want.Bytes())
		}
	}
}
