package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

// builtCAR is a repository CAR made by hand, so tests can break any part of it.
type builtCAR struct {
	root   cid.Cid
	data   cid.Cid
	blocks []block // commit first, then MST nodes, then records
}

func (b *builtCAR) bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeCARBlocks(&buf, b.root, b.blocks); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// signCommit makes a signed commit block over data.
func signCommit(t testing.TB, did string, data cid.Cid, rev string, key atcrypto.PrivateKey) block {
	t.Helper()
	c := atrepo.Commit{DID: did, Version: atrepo.ATPROTO_REPO_VERSION, Data: data, Rev: rev}
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	return block{cidOf(t, buf.Bytes()), buf.Bytes()}
}

// buildRepoCAR builds the CAR of a repository holding records (path -> DAG-CBOR) with indigo's MST.
func buildRepoCAR(t testing.TB, did string, key atcrypto.PrivateKey, records map[string][]byte) *builtCAR {
	t.Helper()
	tree := mst.NewEmptyTree()
	var recs []block
	for path, rec := range records {
		c := cidOf(t, rec)
		if _, err := tree.Insert([]byte(path), c); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, block{c, rec})
	}
	col := &collector{seen: map[cid.Cid]bool{}}
	root, err := tree.WriteDiffBlocks(context.Background(), col)
	if err != nil {
		t.Fatal(err)
	}
	commit := signCommit(t, did, *root, syntax.NewTIDNow(0).String(), key)
	b := &builtCAR{root: commit.cid, data: *root}
	b.blocks = append(append(append(b.blocks, commit), col.blocks...), recs...)
	return b
}

// createOnly creates a repository without keeping a handle (an import waits for every handle to be released).
func createOnly(t testing.TB, s *Store, did syntax.DID, key atcrypto.PrivateKey) {
	t.Helper()
	if _, err := s.Create(context.Background(), did, key); err != nil {
		t.Fatal(err)
	}
}

func postsFor(t testing.TB, n int, prefix string) map[string][]byte {
	m := map[string][]byte{}
	clock := syntax.NewTIDClock(1)
	for i := 0; i < n; i++ {
		m["app.bsky.feed.post/"+clock.Next().String()] = recordCBOR(t, fmt.Sprintf("%s %d", prefix, i))
	}
	return m
}

// snapshot is what a failed import must leave unchanged.
type snapshot struct {
	head    Head
	records int64
	blocks  map[cid.Cid]bool
}

func takeSnapshot(t testing.TB, s *Store, did syntax.DID) snapshot {
	t.Helper()
	var sn snapshot
	err := s.With(context.Background(), did, func(r *Repo) error {
		sn.head = *mustHead(t, r)
		sn.blocks = storedBlocks(t, r)
		var err error
		sn.records, err = r.RecordCount(context.Background())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func assertUnchanged(t testing.TB, s *Store, did syntax.DID, before snapshot) {
	t.Helper()
	after := takeSnapshot(t, s, did)
	if after.head != before.head || after.records != before.records || len(after.blocks) != len(before.blocks) {
		t.Fatalf("repository changed by a failed import: head %v -> %v, records %d -> %d, blocks %d -> %d",
			before.head, after.head, before.records, after.records, len(before.blocks), len(after.blocks))
	}
	for c := range before.blocks {
		if !after.blocks[c] {
			t.Fatalf("block %s lost", c)
		}
	}
	entries, err := os.ReadDir(s.repoDir(did))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), importPrefix) {
			t.Fatalf("scratch file left behind: %s", e.Name())
		}
	}
}

func TestImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:importroundtrip")
	oldKey, newKey := newKey(t), newKey(t)

	// The source: a repository with records, one of them with two blobs and a legacy blob ref.
	src := newTestStore(t, StoreOptions{})
	sr, _ := createRepo(t, src, did, oldKey)
	var ops []WriteOp
	for i := 0; i < 150; i++ {
		ops = append(ops, create(fmt.Sprintf("3k%011d", i), fmt.Sprintf("post %d", i), t))
	}
	if _, err := sr.Apply(ctx, WriteRequest{Ops: ops, Signer: oldKey}); err != nil {
		t.Fatal(err)
	}
	b1, b2 := BlobRef{blobCID(t, "one"), "image/png", 10}, BlobRef{blobCID(t, "two"), "image/jpeg", 20}
	legacy := blobCID(t, "legacy")
	legacyRec, err := atdata.MarshalCBOR(map[string]any{"$type": "app.bsky.actor.profile", "avatar": map[string]any{"cid": legacy.String(), "mimeType": "image/png"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sr.Apply(ctx, WriteRequest{Signer: oldKey, MissingBlobsOK: true, Ops: []WriteOp{
		postWithBlobs(t, "3kblobs", ActionCreate, b1, b2),
		{Action: ActionCreate, Collection: "app.bsky.actor.profile", RKey: "self", Record: legacyRec},
	}}); err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	if err := sr.WriteCAR(ctx, &car, ""); err != nil {
		t.Fatal(err)
	}
	srcHead := mustHead(t, sr)

	// The destination: a fresh (empty) repository of the same DID with another key, and one blob uploaded.
	dst := newTestStore(t, StoreOptions{})
	createOnly(t, dst, did, newKey)
	dst.With(ctx, did, func(r *Repo) error { upload(t, r, b1, time.Now()); return nil })
	res, err := dst.Import(ctx, did, bytes.NewReader(car.Bytes()), ImportOptions{VerifyKey: pubKey(t, oldKey), Signer: newKey})
	if err != nil {
		t.Fatal(err)
	}
	if res.ImportedCommit != srcHead.Commit || res.ImportedRev != srcHead.Rev || res.Head.Data != srcHead.Data ||
		res.Head.Rev <= srcHead.Rev || res.Records != 152 || res.BlobRefs != 3 || res.Bytes != int64(car.Len()) {
		t.Fatalf("result %+v vs source head %+v", res, srcHead)
	}
	r, err := dst.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if h := mustHead(t, r); *h != res.Head {
		t.Fatalf("head %+v, result %+v", h, res.Head)
	}
	assertExactBlocks(t, r)
	if n, _ := r.BlockCount(ctx); n != res.Blocks {
		t.Fatalf("blocks %d, result %d", n, res.Blocks)
	}
	// The new head is signed with the destination's key, over the same data.
	_, commitBlock, err := r.CommitBlock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c atrepo.Commit
	if err := c.UnmarshalCBOR(bytes.NewReader(commitBlock)); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifySignature(pubKey(t, newKey)); err != nil || c.DID != did.String() || c.Data != srcHead.Data {
		t.Fatalf("new head commit: %v %+v", err, c)
	}
	// Records and their values are the source's.
	for _, rkey := range []string{"3k00000000000", "3k00000000149", "3kblobs"} {
		wc, wv, err := sr.GetRecord(ctx, "app.bsky.feed.post", rkey)
		if err != nil {
			t.Fatal(err)
		}
		gc, gv, err := r.GetRecord(ctx, "app.bsky.feed.post", rkey)
		if err != nil || gc != wc || !bytes.Equal(gv, wv) {
			t.Fatalf("record %s: %v %s vs %s", rkey, err, gc, wc)
		}
	}
	// Blobs: the uploaded one is permanent now; the others (and the legacy ref) are missing.
	if b := blobState(t, r, b1.CID); b.Temp || !b.Referenced() || b.State != BlobReady {
		t.Fatalf("uploaded blob after import: %+v", b)
	}
	missing, _, err := r.ListMissingBlobs(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 2 {
		t.Fatalf("missing blobs %+v", missing)
	}
	if exp, imp, _ := r.BlobCounts(ctx); exp != 3 || imp != 1 {
		t.Fatalf("blob counts %d/%d", imp, exp)
	}
	// The first write after the import chains onto the new head and is a valid sync 1.1 commit.
	prev := mustHead(t, r)
	wr, err := r.Apply(ctx, WriteRequest{Signer: newKey, Ops: []WriteOp{create("3knew", "after import", t), del("3k00000000000")}})
	if err != nil {
		t.Fatal(err)
	}
	checkEvent(t, wr, prev, pubKey(t, newKey))
	assertExactBlocks(t, r)
	var again bytes.Buffer
	if err := r.WriteCAR(ctx, &again, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := atrepo.LoadRepoFromCAR(ctx, bytes.NewReader(again.Bytes())); err != nil {
		t.Fatalf("export after import does not load: %v", err)
	}
}

func TestImportEmptyRepo(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:importempty")
	oldKey, newKey := newKey(t), newKey(t)
	src := newTestStore(t, StoreOptions{})
	sr, _ := createRepo(t, src, did, oldKey)
	var car bytes.Buffer
	if err := sr.WriteCAR(ctx, &car, ""); err != nil {
		t.Fatal(err)
	}
	dst := newTestStore(t, StoreOptions{})
	createOnly(t, dst, did, newKey)
	res, err := dst.Import(ctx, did, bytes.NewReader(car.Bytes()), ImportOptions{VerifyKey: pubKey(t, oldKey), Signer: newKey})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 0 || res.Blocks != 2 {
		t.Fatalf("empty import: %+v", res)
	}
	err = dst.With(ctx, did, func(r *Repo) error {
		prev := mustHead(t, r)
		wr, err := r.Apply(ctx, WriteRequest{Signer: newKey, Ops: []WriteOp{create("3kfirst", "hello", t)}})
		if err != nil {
			return err
		}
		checkEvent(t, wr, prev, pubKey(t, newKey))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImportReplaces: a second import replaces the first completely (records, links, blocks), and blobs the
// account has that nothing references any more become unreferenced.
func TestImportReplaces(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:importreplaces")
	oldKey, newKey := newKey(t), newKey(t)
	s := newTestStore(t, StoreOptions{})
	createOnly(t, s, did, newKey)
	blob := BlobRef{blobCID(t, "b"), "image/png", 5}
	first := postsFor(t, 40, "first")
	first["app.bsky.feed.post/3kwithblob"] = postWithBlobs(t, "3kwithblob", ActionCreate, blob).Record
	opts := ImportOptions{VerifyKey: pubKey(t, oldKey), Signer: newKey}
	if _, err := s.Import(ctx, did, bytes.NewReader(buildRepoCAR(t, did.String(), oldKey, first).bytes(t)), opts); err != nil {
		t.Fatal(err)
	}
	s.With(ctx, did, func(r *Repo) error { upload(t, r, blob, time.Now()); return nil })

	second := postsFor(t, 7, "second")
	hooked := 0
	opts.OnBlobsUnreferenced = func(context.Context) error { hooked++; return nil }
	res, err := s.Import(ctx, did, bytes.NewReader(buildRepoCAR(t, did.String(), oldKey, second).bytes(t)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 7 || res.UnreferencedBlobs != 1 || hooked != 1 {
		t.Fatalf("second import: %+v, hook %d", res, hooked)
	}
	err = s.With(ctx, did, func(r *Repo) error {
		assertExactBlocks(t, r)
		if n, _ := r.RecordCount(ctx); n != 7 {
			t.Fatalf("records %d", n)
		}
		for path := range first {
			_, rkey, _ := strings.Cut(path, "/")
			if _, _, err := r.GetRecord(ctx, "app.bsky.feed.post", rkey); !errors.Is(err, ErrRecordNotFound) {
				t.Fatalf("record %s of the first import survived: %v", path, err)
			}
		}
		if b := blobState(t, r, blob.CID); b.Referenced() || b.Temp {
			t.Fatalf("blob after re-import: %+v", b)
		}
		if exp, _, _ := r.BlobCounts(ctx); exp != 0 {
			t.Fatalf("expected blobs %d", exp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImportRefusals: every malformed or foreign CAR is refused with ErrImportInvalid (or ErrImportTooLarge)
// and leaves the previous repository exactly as it was.
func TestImportRefusals(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:importrefusals")
	oldKey, newKey, otherKey := newKey(t), newKey(t), newKey(t)
	s := newTestStore(t, StoreOptions{})
	createOnly(t, s, did, newKey)
	good := buildRepoCAR(t, did.String(), oldKey, postsFor(t, 30, "good"))
	opts := ImportOptions{VerifyKey: pubKey(t, oldKey), Signer: newKey}
	// The hand-made single-node tree is valid before it is broken.
	if _, err := s.Import(ctx, did, bytes.NewReader(leafCAR(t, did.String(), oldKey, "ok")), opts); err != nil {
		t.Fatalf("valid single-node tree: %v", err)
	}
	if _, err := s.Import(ctx, did, bytes.NewReader(good.bytes(t)), opts); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, s, did)
	goodBytes := good.bytes(t)

	clone := func() *builtCAR {
		c := &builtCAR{root: good.root, data: good.data, blocks: append([]block(nil), good.blocks...)}
		return c
	}
	// withRecord re-signs a repository holding one extra record with the given bytes.
	withRecord := func(rec []byte) []byte {
		recs := postsFor(t, 3, "x")
		recs["app.bsky.feed.post/3kbad"] = rec
		return buildRepoCAR(t, did.String(), oldKey, recs).bytes(t)
	}
	var deep []byte
	deep = append(deep, 0xa2, 0x65, '$', 't', 'y', 'p', 'e', 0x61, 'x', 0x61, 'n')
	for i := 0; i < 200; i++ {
		deep = append(deep, 0x81) // array of one element, nested 200 deep
	}
	deep = append(deep, 0x01)

	cases := []struct {
		name string
		car  func() []byte
		key  atcrypto.PublicKey
		max  int64
		want string
	}{
		{"empty body", func() []byte { return nil }, nil, 0, "empty body"},
		{"truncated", func() []byte { return goodBytes[:len(goodBytes)-10] }, nil, 0, "truncated"},
		{"truncated header", func() []byte { return goodBytes[:5] }, nil, 0, "truncated"},
		{"garbage", func() []byte { return []byte("this is not a CAR file at all") }, nil, 0, "CAR"},
		{"wrong root", func() []byte {
			c := clone()
			c.root = cidOf(t, []byte("nothing"))
			return c.bytes(t)
		}, nil, 0, "not in the CAR"},
		{"root is not a commit", func() []byte {
			c := clone()
			c.root = c.blocks[len(c.blocks)-1].cid // a record
			return c.bytes(t)
		}, nil, 0, "commit"},
		{"hash mismatch", func() []byte {
			c := clone()
			last := c.blocks[len(c.blocks)-1]
			c.blocks[len(c.blocks)-1] = block{last.cid, append(append([]byte{}, last.data...), 0x00)}
			return c.bytes(t)
		}, nil, 0, "do not match its CID"},
		{"another DID", func() []byte {
			return buildRepoCAR(t, "did:plc:someoneelse", oldKey, postsFor(t, 3, "theirs")).bytes(t)
		}, nil, 0, "not for this account"},
		{"bad signature", func() []byte { return goodBytes }, pubKey(t, otherKey), 0, "signature"},
		{"missing record", func() []byte {
			c := clone()
			c.blocks = c.blocks[:len(c.blocks)-1]
			return c.bytes(t)
		}, nil, 0, "missing from the CAR"},
		{"missing MST node", func() []byte {
			c := clone()
			c.blocks = append(c.blocks[:1:1], c.blocks[2:]...) // drop the first node after the commit
			return c.bytes(t)
		}, nil, 0, "missing from the CAR"},
		{"huge block", func() []byte {
			var buf bytes.Buffer
			writeCARBlocks(&buf, good.root, good.blocks[:1])
			buf.Write(binary.AppendUvarint(nil, 64<<20)) // claims a 64 MiB section
			buf.Write(make([]byte, 1024))
			return buf.Bytes()
		}, nil, 0, "too large"},
		{"deeply nested record", func() []byte { return withRecord(deep) }, nil, 0, "could not parse record"},
		{"record that is not a map", func() []byte { return withRecord([]byte{0x01}) }, nil, 0, "could not parse record"},
		{"too large", func() []byte { return goodBytes }, nil, int64(len(goodBytes) - 1), ""},
		{"not canonical: wrong height", func() []byte { return nonCanonicalCAR(t, did.String(), oldKey) }, nil, 0, "height"},
		{"not canonical: keys out of order", func() []byte { return leafCAR(t, did.String(), oldKey, "out of order") }, nil, 0, "out of order"},
		{"not canonical: prefix compression", func() []byte { return leafCAR(t, did.String(), oldKey, "short prefix") }, nil, 0, "canonically encoded"},
		{"not canonical: child below the bottom layer", func() []byte { return leafCAR(t, did.String(), oldKey, "child below bottom") }, nil, 0, "below the bottom"},
		{"future rev", func() []byte {
			c := clone()
			c.blocks[0] = signCommit(t, did.String(), good.data, syntax.NewTID(time.Now().Add(time.Hour).UnixMicro(), 0).String(), oldKey)
			c.root = c.blocks[0].cid
			return c.bytes(t)
		}, nil, 0, "future"},
		{"bad path", func() []byte {
			return buildRepoCAR(t, did.String(), oldKey, map[string][]byte{"not a path": recordCBOR(t, "x")}).bytes(t)
		}, nil, 0, "invalid record path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.key != nil {
				o.VerifyKey = tc.key
			}
			o.MaxBytes = tc.max
			_, err := s.Import(ctx, did, bytes.NewReader(tc.car()), o)
			switch {
			case tc.max > 0:
				if !errors.Is(err, ErrImportTooLarge) {
					t.Fatalf("want ErrImportTooLarge, got %v", err)
				}
			case !errors.Is(err, ErrImportInvalid) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("want ErrImportInvalid with %q, got %v", tc.want, err)
			}
			assertUnchanged(t, s, did, before)
		})
	}
}

// nonCanonicalCAR is a signed repository whose single MST node breaks one rule of the tree (see leafCAR).
func nonCanonicalCAR(t testing.TB, did string, key atcrypto.PrivateKey) []byte {
	return leafCAR(t, did, key, "mixed heights")
}

// leafCAR is a signed repository made of one MST node over a few records, broken as variant says:
// "ok" (a valid tree of height-0 keys), "mixed heights" (keys of several heights in one node), "out of order",
// "short prefix" (keys not prefix-compressed as the canonical encoding requires), "child below bottom".
func leafCAR(t testing.TB, did string, key atcrypto.PrivateKey, variant string) []byte {
	t.Helper()
	recs := postsFor(t, 40, "leaf")
	var keys []string
	high := variant == "mixed heights" // one key of height > 0 among keys of height 0
	for k := range recs {
		if h := mst.HeightForKey([]byte(k)); h == 0 && len(keys) < 5 {
			keys = append(keys, k)
		} else if h > 0 && high {
			keys, high = append(keys, k), false
		}
	}
	if len(keys) < 5 || high {
		t.Fatal("not enough keys of the wanted heights")
	}
	sortStrings(keys)
	if variant == "out of order" {
		keys[1], keys[2] = keys[2], keys[1]
	}
	var leaf mst.NodeData
	var recBlocks []block
	var prev []byte
	for _, k := range keys {
		c := cidOf(t, recs[k])
		p := mst.CountPrefixLen(prev, []byte(k))
		if variant == "short prefix" {
			p = 0
		}
		leaf.Entries = append(leaf.Entries, mst.EntryData{PrefixLen: int64(p), KeySuffix: []byte(k)[p:], Value: c})
		prev = []byte(k)
		recBlocks = append(recBlocks, block{c, recs[k]})
	}
	var extra []block
	if variant == "child below bottom" {
		child := mst.NodeData{Entries: []mst.EntryData{{KeySuffix: []byte("app.bsky.feed.post/0000000000000"), Value: recBlocks[0].cid}}}
		cb, cc, err := child.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		leaf.Left = cc
		extra = append(extra, block{*cc, cb})
	}
	lb, lc, err := leaf.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	commit := signCommit(t, did, *lc, syntax.NewTIDNow(0).String(), key)
	all := append([]block{commit, {*lc, lb}}, extra...)
	all = append(all, recBlocks...)
	var buf bytes.Buffer
	if err := writeCARBlocks(&buf, commit.cid, all); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestImportWhileInUse: a handle in use delays the swap, Repo calls made meanwhile wait for it and then see the
// new repository, a second import of the same repository is refused, and an import whose context ends while
// waiting leaves the repository intact.
func TestImportWhileInUse(t *testing.T) {
	ctx := context.Background()
	did := syntax.DID("did:plc:importinuse")
	oldKey, newKey := newKey(t), newKey(t)
	s := newTestStore(t, StoreOptions{})
	if _, err := s.Create(ctx, did, newKey); err != nil {
		t.Fatal(err)
	}
	opts := ImportOptions{VerifyKey: pubKey(t, oldKey), Signer: newKey}
	car := buildRepoCAR(t, did.String(), oldKey, postsFor(t, 20, "busy")).bytes(t)
	held, err := s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}

	// Cancelled while waiting for the handle: nothing changes.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = s.Import(short, did, bytes.NewReader(car), opts)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("import with the repository in use: %v", err)
	}
	if n, err := held.RecordCount(ctx); err != nil || n != 0 {
		t.Fatalf("records after a cancelled import: %d %v", n, err)
	}

	swapping := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.swapping[did] != nil
	}
	held.Release()
	held, err = s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Import(ctx, did, bytes.NewReader(car), opts)
		done <- err
	}()
	for !swapping() {
		select {
		case err := <-done:
			t.Fatalf("import finished while a handle was held: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := s.Import(ctx, did, bytes.NewReader(car), opts); !errors.Is(err, ErrImportInProgress) {
		t.Fatalf("second import: %v", err)
	}
	got := make(chan int64, 1)
	go func() {
		r, err := s.Repo(ctx, did)
		if err != nil {
			got <- -1
			return
		}
		defer r.Release()
		n, _ := r.RecordCount(ctx)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("Repo returned during the swap (%d records)", n)
	case <-time.After(100 * time.Millisecond):
	}
	held.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 20 {
		t.Fatalf("a reader that waited for the swap sees %d records", n)
	}
}
