package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	gocar "github.com/ipld/go-car"
)

func readCAR(t testing.TB, b []byte) (cid.Cid, []blocks.Block) {
	t.Helper()
	cr, err := gocar.NewCarReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []blocks.Block
	for {
		blk, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blk)
	}
	return cr.Header.Roots[0], out
}

func TestWriteCAR(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:carexport", key)
	var ops []WriteOp
	for i := range 300 {
		col := syntax.NSID("app.bsky.feed.post")
		if i%3 == 0 {
			col = "app.bsky.feed.like"
		}
		ops = append(ops, WriteOp{Action: ActionCreate, Collection: col, RKey: syntax.RecordKey(fmt.Sprintf("r%04d", i)), Record: recordCBOR(t, fmt.Sprint(i%50))})
		if len(ops) == MaxOps {
			if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
		t.Fatal(err)
	}
	since := mustHead(t, r).Rev
	upd, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{update("r0001", "changed", t), create("zzz", "new", t)}, Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	head := mustHead(t, r)

	var buf bytes.Buffer
	if err := r.WriteCAR(ctx, &buf, ""); err != nil {
		t.Fatal(err)
	}
	commit, loaded, err := atrepo.LoadRepoFromCAR(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := commit.VerifySignature(pubKey(t, key)); err != nil {
		t.Fatal(err)
	}
	root, blks := readCAR(t, buf.Bytes())
	if root != head.Commit || blks[0].Cid() != head.Commit {
		t.Fatal("CAR root / first block is not the head commit")
	}
	if commit.Data != head.Data {
		t.Fatal("commit data != head data")
	}
	if rc, _ := loaded.MST.RootCID(); *rc != head.Data {
		t.Fatalf("loaded MST root %s, want %s", rc, head.Data)
	}
	if int64(len(blks)) != must(r.BlockCount(ctx)) {
		t.Fatalf("CAR has %d blocks, store %d", len(blks), must(r.BlockCount(ctx)))
	}
	n := 0
	err = loaded.MST.Walk(func(k []byte, v cid.Cid) error {
		n++
		col, rkey, err := syntax.ParseRepoPath(string(k))
		if err != nil {
			return err
		}
		b, c, err := loaded.GetRecordBytes(ctx, col, rkey)
		if err != nil {
			return err
		}
		want, wb, err := r.GetRecord(ctx, col.String(), rkey.String())
		if err != nil || want != *c || !bytes.Equal(wb, b) || cidOf(t, b) != *c {
			return fmt.Errorf("record %s differs", k)
		}
		return nil
	})
	if err != nil || int64(n) != must(r.RecordCount(ctx)) {
		t.Fatalf("walk: %v, %d records", err, n)
	}

	// since: only blocks of later commits.
	buf.Reset()
	if err := r.WriteCAR(ctx, &buf, since); err != nil {
		t.Fatal(err)
	}
	root, blks = readCAR(t, buf.Bytes())
	got := map[cid.Cid]bool{}
	for _, b := range blks {
		got[b.Cid()] = true
	}
	if root != head.Commit || !got[head.Commit] || !got[*upd.Ops[0].CID] || !got[*upd.Ops[1].CID] || !got[head.Data] {
		t.Fatal("since CAR lacks the new commit, records or root")
	}
	old, _, _ := r.GetRecord(ctx, "app.bsky.feed.post", "r0002")
	if got[old] || len(blks) >= 30 {
		t.Fatalf("since CAR has old blocks (%d blocks)", len(blks))
	}
}

func must(n int64, err error) int64 {
	if err != nil {
		panic(err)
	}
	return n
}

// verifyProof walks a proof CAR independently: commit signature, then the MST path from
// the commit's data root to the key. It returns the record CID (nil = proven absent).
func verifyProof(t *testing.T, b []byte, key string, pub interface {
	HashAndVerify([]byte, []byte) error
}) *cid.Cid {
	t.Helper()
	ctx := context.Background()
	root, blks := readCAR(t, b)
	bs := atrepo.NewTinyBlockstore()
	for _, blk := range blks {
		bs.Put(ctx, blk)
	}
	cb, err := bs.Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var commit atrepo.Commit
	if err := commit.UnmarshalCBOR(bytes.NewReader(cb.RawData())); err != nil {
		t.Fatal(err)
	}
	ub, _ := commit.UnsignedBytes()
	if err := pub.HashAndVerify(ub, commit.Sig); err != nil {
		t.Fatal(err)
	}
	tree, err := mst.LoadTreeFromStore(ctx, bs, commit.Data)
	if err != nil {
		t.Fatal(err)
	}
	// Get fails with ErrPartialTree if the path needed a node the proof lacks.
	v, err := tree.Get([]byte(key))
	if err != nil {
		t.Fatalf("proof for %s incomplete: %v", key, err)
	}
	if v != nil {
		rb, err := bs.Get(ctx, *v)
		if err != nil {
			t.Fatalf("record block missing: %v", err)
		}
		if cidOf(t, rb.RawData()) != *v {
			t.Fatal("record block hash")
		}
	}
	return v
}

func TestRecordProof(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	pub := pubKey(t, key)
	r, _ := createRepo(t, s, "did:plc:proofs", key)
	var ops []WriteOp
	for i := range 200 {
		ops = append(ops, create(fmt.Sprintf("p%04d", i*2), fmt.Sprint(i), t))
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
		t.Fatal(err)
	}
	total := must(r.BlockCount(ctx))
	for i := range 400 {
		rkey := fmt.Sprintf("p%04d", i)
		var buf bytes.Buffer
		if err := r.WriteRecordProof(ctx, &buf, postNSID.String(), rkey); err != nil {
			t.Fatal(err)
		}
		_, blks := readCAR(t, buf.Bytes())
		if int64(len(blks)) >= total/2 {
			t.Fatalf("proof is not a path: %d of %d blocks", len(blks), total)
		}
		v := verifyProof(t, buf.Bytes(), postNSID.String()+"/"+rkey, pub)
		if i%2 == 0 {
			want, _, _ := r.GetRecord(ctx, postNSID.String(), rkey)
			if v == nil || *v != want {
				t.Fatalf("%s: proof gives %v, want %s", rkey, v, want)
			}
		} else if v != nil {
			t.Fatalf("%s: absent record proven present", rkey)
		}
	}
	// Absence in an other collection and in an empty repository.
	var buf bytes.Buffer
	if err := r.WriteRecordProof(ctx, &buf, "app.bsky.feed.like", "p0000"); err != nil {
		t.Fatal(err)
	}
	if verifyProof(t, buf.Bytes(), "app.bsky.feed.like/p0000", pub) != nil {
		t.Fatal("absent like proven present")
	}
	r2, _ := createRepo(t, s, "did:plc:proofsempty", key)
	buf.Reset()
	if err := r2.WriteRecordProof(ctx, &buf, "app.bsky.feed.like", "x"); err != nil {
		t.Fatal(err)
	}
	if verifyProof(t, buf.Bytes(), "app.bsky.feed.like/x", pub) != nil {
		t.Fatal("empty repo proof")
	}
}

func TestListRecordsAndBlocks(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:listing", key)
	clock := syntax.NewTIDClock(0)
	var rkeys []string
	var ops []WriteOp
	for i := range 25 {
		rk := clock.Next().String()
		rkeys = append(rkeys, rk)
		ops = append(ops, create(rk, fmt.Sprint(i), t))
	}
	ops = append(ops, WriteOp{Action: ActionCreate, Collection: "app.bsky.feed.like", RKey: "x", Record: recordCBOR(t, "l")})
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
		t.Fatal(err)
	}
	for _, reverse := range []bool{false, true} {
		var got []string
		cursor := ""
		pages := 0
		for {
			recs, next, err := r.ListRecords(ctx, postNSID.String(), 10, cursor, reverse)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, rec := range recs {
				if rec.Collection != postNSID.String() || cidOf(t, rec.Value) != rec.CID {
					t.Fatal("bad record")
				}
				got = append(got, rec.RKey)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if pages != 3 || len(got) != 25 {
			t.Fatalf("reverse=%v: %d pages %d records", reverse, pages, len(got))
		}
		for i := range got {
			want := rkeys[len(rkeys)-1-i] // newest first
			if reverse {
				want = rkeys[i]
			}
			if got[i] != want {
				t.Fatalf("reverse=%v: order at %d: %s want %s", reverse, i, got[i], want)
			}
		}
	}
	if recs, next, _ := r.ListRecords(ctx, "com.example.none", 10, "", false); len(recs) != 0 || next != "" {
		t.Fatal("empty collection")
	}

	// WriteBlocks.
	head := mustHead(t, r)
	c0, _, _ := r.GetRecord(ctx, postNSID.String(), rkeys[0])
	var buf bytes.Buffer
	missing, err := r.WriteBlocks(ctx, &buf, []cid.Cid{c0, head.Data})
	if err != nil || len(missing) != 0 {
		t.Fatal(err, missing)
	}
	root, blks := readCAR(t, buf.Bytes())
	if root != head.Commit || len(blks) != 2 || blks[0].Cid() != c0 || blks[1].Cid() != head.Data {
		t.Fatal("WriteBlocks CAR")
	}
	absent := cidOf(t, []byte{0xa0})
	buf.Reset()
	missing, err = r.WriteBlocks(ctx, &buf, []cid.Cid{c0, absent})
	if err != nil || len(missing) != 1 || missing[0] != absent || buf.Len() != 0 {
		t.Fatalf("missing %v err %v wrote %d", missing, err, buf.Len())
	}
	// The blockstore returns ipld.ErrNotFound for a missing block.
	if _, err := (blockSource{r.db}).Get(ctx, absent); err == nil || !isNotFound(err) {
		t.Fatalf("missing block error %v", err)
	}
	if _, _, err := r.GetRecord(ctx, postNSID.String(), "nope"); !errors.Is(err, ErrRecordNotFound) {
		t.Fatal(err)
	}
}
