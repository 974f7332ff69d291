package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	gocar "github.com/ipld/go-car"
)

// memSource is a block store that mirrors what SQLite holds: a commit's nodes are added and its dead nodes
// removed, so a lazy tree that reads a node the store no longer has fails.
type memSource map[cid.Cid][]byte

func (m memSource) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, ok := m[c]
	if !ok {
		return nil, &ipld.ErrNotFound{Cid: c}
	}
	return blocks.NewBlockWithCid(data, c)
}

func (m memSource) commit(d *treeDiff) {
	for _, b := range d.nodes {
		m[b.cid] = b.data
	}
	for _, c := range d.dead {
		delete(m, c)
	}
}

// sameDiff fails unless two diffs of the same ops are identical: root, prevs, MST blocks in order, dead set.
func sameDiff(t *testing.T, what string, want, got *treeDiff) {
	t.Helper()
	if !want.root.Equals(got.root) {
		t.Fatalf("%s: root %s, complete tree %s", what, got.root, want.root)
	}
	for i := range want.ops {
		w, g := want.ops[i].Prev, got.ops[i].Prev
		if (w == nil) != (g == nil) || (w != nil && !w.Equals(*g)) {
			t.Fatalf("%s: op %s prev %v, complete tree %v", what, want.ops[i].Path, g, w)
		}
	}
	if len(want.nodes) != len(got.nodes) {
		t.Fatalf("%s: %d MST blocks, complete tree %d", what, len(got.nodes), len(want.nodes))
	}
	for i := range want.nodes {
		if !want.nodes[i].cid.Equals(got.nodes[i].cid) || !bytes.Equal(want.nodes[i].data, got.nodes[i].data) {
			t.Fatalf("%s: MST block %d is %s, complete tree %s", what, i, got.nodes[i].cid, want.nodes[i].cid)
		}
	}
	wd, gd := slices.Clone(want.dead), slices.Clone(got.dead)
	less := func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) }
	slices.SortFunc(wd, less)
	slices.SortFunc(gd, less)
	if !slices.EqualFunc(wd, gd, cid.Cid.Equals) {
		t.Fatalf("%s: dead %v, complete tree %v", what, gd, wd)
	}
}

// opKind tells what an op does to the complete tree: "grow" (a key above the root), "split" (a new key
// whose slot holds a subtree), "merge" (removing a key between two subtrees), or "plain".
func opKind(root *mst.Node, key string, insert bool) string {
	h := mst.HeightForKey([]byte(key))
	if h > root.Height {
		if insert {
			return "grow"
		}
		return "plain"
	}
	n := root
	for n.Height > h {
		next := gapChild(n, key)
		if next < 0 {
			return "plain"
		}
		n = n.Entries[next].Child
	}
	for i, e := range n.Entries {
		if e.IsValue() && string(e.Key) == key {
			if !insert && i > 0 && i+1 < len(n.Entries) && n.Entries[i-1].IsChild() && n.Entries[i+1].IsChild() {
				return "merge"
			}
			return "plain"
		}
	}
	if insert && gapChild(n, key) >= 0 {
		return "split"
	}
	return "plain"
}

// gapChild is the index of the child entry of n whose gap holds key, or -1.
func gapChild(n *mst.Node, key string) int {
	idx := -1
	for i, e := range n.Entries {
		if e.IsChild() {
			idx = i
			continue
		}
		if key <= string(e.Key) {
			break
		}
		idx = -1
	}
	return idx
}

func randomKey(rng *rand.Rand) string {
	const alphabet = "234567abcdefghijklmnopqrstuvwxyz"
	colls := []string{"app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow"}
	b := make([]byte, 13)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return colls[rng.IntN(len(colls))] + "/" + string(b)
}

// TestLazyTreeMatchesCompleteTree applies the same random commits (creates, updates, deletes; merges, splits,
// the root growing and collapsing) to a complete tree and to a lazily loaded one with a tiny node bound, so
// it is trimmed back to its root every few commits, and requires identical diffs.
func TestLazyTreeMatchesCompleteTree(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 9))
	vals := make([]cid.Cid, 6)
	for i := range vals {
		vals[i] = cidOf(t, []byte{0xa1, 0x61, 'v', byte(i)})
	}
	full := completeTree(mst.NewEmptyTree())
	live := map[string]cid.Cid{}
	var seed []treeOp
	for len(live) < 3000 {
		k := randomKey(rng)
		if _, ok := live[k]; ok {
			continue
		}
		v := vals[rng.IntN(len(vals))]
		live[k] = v
		seed = append(seed, treeOp{path: k, value: &v})
	}
	d, err := applyTreeOps(ctx, &full, seed)
	if err != nil {
		t.Fatal(err)
	}
	src := memSource{}
	src.commit(d)
	lazy, err := openLazyTree(ctx, src, d.root, 40)
	if err != nil {
		t.Fatal(err)
	}

	kinds := map[string]int{}
	liveKeys := func() []string {
		ks := make([]string, 0, len(live))
		for k := range live {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	round := func(name string, ops []treeOp) {
		t.Helper()
		for _, op := range ops {
			kinds[opKind(full.Root, op.path, op.value != nil)]++
		}
		want, err := applyTreeOps(ctx, &full, ops)
		if err != nil {
			t.Fatalf("%s: complete tree: %v", name, err)
		}
		got, err := applyTreeOps(ctx, &lazy, ops)
		if err != nil {
			t.Fatalf("%s: lazy tree: %v", name, err)
		}
		sameDiff(t, name, want, got)
		src.commit(got)
		if lazy.overLimit() {
			lazy.trim()
		}
	}
	// Mixed commits of 1–8 ops over the whole key space.
	for r := range 400 {
		ks := liveKeys()
		var ops []treeOp
		used := map[string]bool{}
		for range 1 + rng.IntN(8) {
			var k string
			if rng.IntN(3) == 0 {
				k = randomKey(rng)
			} else {
				k = ks[rng.IntN(len(ks))]
			}
			if used[k] {
				continue
			}
			used[k] = true
			_, exists := live[k]
			switch {
			case exists && rng.IntN(2) == 0:
				ops = append(ops, treeOp{path: k})
				delete(live, k)
			default:
				v := vals[rng.IntN(len(vals))]
				if exists && v.Equals(live[k]) {
					v = vals[(slices.Index(vals, v)+1)%len(vals)]
				}
				ops = append(ops, treeOp{path: k, value: &v})
				live[k] = v
			}
		}
		round(fmt.Sprintf("mixed %d", r), ops)
	}
	// Delete everything in random commits (the root collapses level by level), then grow again.
	ks := liveKeys()
	rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
	for r := 0; len(ks) > 0; r++ {
		n := min(len(ks), 1+rng.IntN(40))
		var ops []treeOp
		for _, k := range ks[:n] {
			ops = append(ops, treeOp{path: k})
			delete(live, k)
		}
		ks = ks[n:]
		round(fmt.Sprintf("drain %d", r), ops)
	}
	if !lazy.IsEmpty() {
		t.Fatal("drained tree not empty")
	}
	for r := range 300 {
		var ops []treeOp
		for range 1 + rng.IntN(4) {
			k := randomKey(rng)
			v := vals[rng.IntN(len(vals))]
			ops = append(ops, treeOp{path: k, value: &v})
			live[k] = v
		}
		round(fmt.Sprintf("regrow %d", r), ops)
	}

	t.Logf("op kinds %v, trims %d", kinds, lazy.trims)
	if kinds["merge"] < 20 || kinds["split"] < 20 || kinds["grow"] < 2 {
		t.Fatalf("the random ops did not exercise merges, splits and root growth enough: %v", kinds)
	}
	if lazy.trims < 50 {
		t.Fatalf("only %d trims", lazy.trims)
	}
	// The store (mirroring SQLite's block GC) still holds the whole tree.
	root, err := lazy.RootCID()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := mst.LoadTreeFromStore(ctx, src, *root)
	if err != nil || loaded.IsPartial() {
		t.Fatalf("stored tree incomplete: %v", err)
	}
	m := map[string]cid.Cid{}
	if err := loaded.WriteToMap(m); err != nil {
		t.Fatal(err)
	}
	if len(m) != len(live) {
		t.Fatalf("stored tree has %d keys, want %d", len(m), len(live))
	}
}

// TestLazyTreeCommitProofs runs the sync 1.1 commit-proof vectors on a tree that starts from its root node.
func TestLazyTreeCommitProofs(t *testing.T) {
	raw, err := os.ReadFile("testdata/interop/firehose/commit-proof-fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []commitProofFixture
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range fixtures {
		t.Run(f.Comment, func(t *testing.T) {
			leaf, err := cid.Decode(f.LeafValue)
			if err != nil {
				t.Fatal(err)
			}
			full := completeTree(mst.NewEmptyTree())
			var setup []treeOp
			for _, k := range f.Keys {
				setup = append(setup, treeOp{path: k, value: &leaf})
			}
			d, err := applyTreeOps(ctx, &full, setup)
			if err != nil {
				t.Fatal(err)
			}
			src := memSource{}
			src.commit(d)
			lazy, err := openLazyTree(ctx, src, d.root, 1)
			if err != nil {
				t.Fatal(err)
			}
			var ops []treeOp
			for _, k := range f.Dels {
				ops = append(ops, treeOp{path: k})
			}
			for _, k := range f.Adds {
				ops = append(ops, treeOp{path: k, value: &leaf})
			}
			want, err := applyTreeOps(ctx, &full, ops)
			if err != nil {
				t.Fatal(err)
			}
			got, err := applyTreeOps(ctx, &lazy, ops)
			if err != nil {
				t.Fatal(err)
			}
			sameDiff(t, f.Comment, want, got)
			if got.root.String() != f.RootAfterCommit {
				t.Fatalf("root after %s, want %s", got.root, f.RootAfterCommit)
			}
			have := map[string]bool{}
			for _, b := range got.nodes {
				have[b.cid.String()] = true
			}
			for _, c := range f.BlocksInProof {
				if !have[c] {
					t.Errorf("proof block %s missing", c)
				}
			}
		})
	}
}

// setTreeBound sets the writer's node bound (loading the state if needed).
func setTreeBound(t *testing.T, r *Repo, n int) {
	t.Helper()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	st, err := r.loadState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.tree.maxNodes = n
}

// TestLazyWriterMatchesCompleteTree writes random commits through Apply (SQLite, a tiny node bound, the tree
// dropped now and then as after a reopen) and checks each event's MST blocks and data root against a
// complete in-memory tree given the same ops, the events with VerifyCommitMessage, and the stored block set.
func TestLazyWriterMatchesCompleteTree(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	pub := pubKey(t, key)
	r, _ := createRepo(t, s, "did:plc:lazywriter", key)
	rng := rand.New(rand.NewPCG(11, 13))
	ref := completeTree(mst.NewEmptyTree())
	live := map[string]bool{} // rkeys
	trims := 0
	bound := func() {
		if r.st != nil {
			trims += r.st.tree.trims
		}
		setTreeBound(t, r, 12)
		r.st.tree.trims = 0
	}
	bound()
	commit := func(name string, ops []WriteOp) {
		t.Helper()
		prev := mustHead(t, r)
		tops := make([]treeOp, len(ops))
		for i, op := range ops {
			tops[i].path = op.Collection.String() + "/" + op.RKey.String()
			if op.Record != nil {
				c := cidOf(t, op.Record)
				tops[i].value = &c
			}
		}
		want, err := applyTreeOps(ctx, &ref, tops)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !res.Data.Equals(want.root) {
			t.Fatalf("%s: data %s, complete tree %s", name, res.Data, want.root)
		}
		checkEvent(t, res, prev, pub)
		// The CAR slice: the commit, then exactly the complete tree's MST blocks in order, then records.
		cr, err := gocar.NewCarReader(bytes.NewReader(res.Event.Blocks))
		if err != nil {
			t.Fatal(err)
		}
		var got []block
		for {
			b, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, block{b.Cid(), b.RawData()})
		}
		if len(got) < 1+len(want.nodes) {
			t.Fatalf("%s: %d blocks, want at least 1 + %d", name, len(got), len(want.nodes))
		}
		for i, b := range want.nodes {
			if g := got[1+i]; !g.cid.Equals(b.cid) || !bytes.Equal(g.data, b.data) {
				t.Fatalf("%s: block %d is %s, complete tree %s", name, 1+i, g.cid, b.cid)
			}
		}
	}
	body := func() string { return fmt.Sprintf("body %d", rng.IntN(7)) }
	// ~3,000 records in 200-op commits.
	rk := func(i int) string { return fmt.Sprintf("3k%011d", i*7919%100000) }
	for i := 0; i < 3000; i += MaxOps {
		var ops []WriteOp
		for j := i; j < i+MaxOps; j++ {
			ops = append(ops, create(rk(j), body(), t))
			live[rk(j)] = true
		}
		commit(fmt.Sprintf("seed %d", i), ops)
	}
	for round := range 300 {
		if round%50 == 25 {
			r.wmu.Lock()
			trims += r.st.tree.trims
			r.st = nil // as after a reopen: the next write starts from the root
			r.wmu.Unlock()
			bound()
		}
		var ops []WriteOp
		used := map[string]bool{}
		for range 1 + rng.IntN(6) {
			var k string
			if rng.IntN(3) == 0 {
				k = fmt.Sprintf("3k%011d", 100000+rng.IntN(100000))
			} else {
				k = rk(rng.IntN(3000))
			}
			if used[k] {
				continue
			}
			used[k] = true
			switch {
			case live[k] && rng.IntN(2) == 0:
				ops = append(ops, del(k))
				delete(live, k)
			case live[k]:
				ops = append(ops, update(k, fmt.Sprintf("updated %d", round), t))
			default:
				ops = append(ops, create(k, body(), t))
				live[k] = true
			}
		}
		commit(fmt.Sprintf("round %d", round), ops)
		if round%60 == 0 {
			assertExactBlocks(t, r)
		}
	}
	assertExactBlocks(t, r)
	trims += r.st.tree.trims
	if trims < 20 {
		t.Fatalf("only %d trims", trims)
	}
	if n := r.st.tree.nodes; n > 200 {
		t.Fatalf("%d nodes in memory with a bound of 12", n)
	}
}

// TestLazyTreeKeylessRoot opens a tree whose root holds only a pointer (not canonical, but decodable): its
// height comes from the first node with a key below it.
func TestLazyTreeKeylessRoot(t *testing.T) {
	ctx := context.Background()
	v := cidOf(t, []byte{0xa0})
	full := completeTree(mst.NewEmptyTree())
	var ops []treeOp
	for i := range 300 {
		ops = append(ops, treeOp{path: fmt.Sprintf("com.example.rec/k%04d", i), value: &v})
	}
	d, err := applyTreeOps(ctx, &full, ops)
	if err != nil {
		t.Fatal(err)
	}
	src := memSource{}
	src.commit(d)
	top := mst.NodeData{Left: &d.root, Entries: []mst.EntryData{}}
	data, c, err := top.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	src[*c] = data
	lazy, err := openLazyTree(ctx, src, *c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := full.Root.Height + 1; lazy.Root.Height != want {
		t.Fatalf("root height %d, want %d", lazy.Root.Height, want)
	}
	got, err := lazy.lookup(ctx, "com.example.rec/k0123")
	if err != nil || got == nil || !got.Equals(v) {
		t.Fatalf("lookup: %v %v", got, err)
	}
}
