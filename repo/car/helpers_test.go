package car

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	blockstore "github.com/ipfs/go-ipfs-blockstore"
)

var cborPrefix = cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: 0x12, MhLength: 32}

func cidOf(t testing.TB, b []byte) cid.Cid {
	t.Helper()
	c, err := cborPrefix.Sum(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fixedKey(t testing.TB, b byte) atcrypto.PrivateKey {
	t.Helper()
	k, err := atcrypto.ParsePrivateBytesK256(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func posts(t testing.TB, n int) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	clock := syntax.NewTIDClock(1)
	for i := range n {
		rec, err := atdata.MarshalCBOR(map[string]any{"$type": "app.bsky.feed.post", "text": fmt.Sprintf("post %d", i),
			"createdAt": "2024-01-01T00:00:00.000Z"})
		if err != nil {
			t.Fatal(err)
		}
		m["app.bsky.feed.post/"+clock.Next().String()] = rec
	}
	return m
}

// repoCAR is the CAR of a repository of did holding records (path -> DAG-CBOR), built with indigo's MST and
// signed by key; rev is the commit's.
func repoCAR(t testing.TB, did string, key atcrypto.PrivateKey, records map[string][]byte) []byte {
	t.Helper()
	ctx := context.Background()
	tree := mst.NewEmptyTree()
	bs := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	var blocks [][2][]byte
	for path, rec := range records {
		c := cidOf(t, rec)
		if _, err := tree.Insert([]byte(path), c); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, [2][]byte{c.Bytes(), rec})
	}
	root, err := tree.WriteDiffBlocks(ctx, bs)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bs.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		b, err := bs.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		// The blockstore keys by multihash (raw CIDs come back): the block's CID is its dag-cbor one.
		blocks = append(blocks, [2][]byte{cidOf(t, b.RawData()).Bytes(), b.RawData()})
	}
	commit := atrepo.Commit{DID: did, Version: atrepo.ATPROTO_REPO_VERSION, Data: *root, Rev: syntax.NewTIDNow(0).String()}
	if err := commit.Sign(key); err != nil {
		t.Fatal(err)
	}
	var cb bytes.Buffer
	if err := commit.MarshalCBOR(&cb); err != nil {
		t.Fatal(err)
	}
	commitCID := cidOf(t, cb.Bytes())
	var out bytes.Buffer
	w, err := NewWriter(&out, commitCID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(commitCID, cb.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		_, c, err := cid.CidFromBytes(b[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(c, b[1]); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// memSource is a CAR read into memory (what the fuzz targets verify).
type memSource map[cid.Cid][]byte

func (m memSource) Block(_ context.Context, c cid.Cid) ([]byte, bool, error) {
	b, ok := m[c]
	return b, ok, nil
}
