package repo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"
)

func treeNodes(n *mst.Node, out map[cid.Cid]bool) {
	out[*n.CID] = true
	for _, e := range n.Entries {
		if e.Child != nil {
			treeNodes(e.Child, out)
		}
	}
}

// TestDeadNodesExact checks, in memory and over many random multi-op commits, that the
// dead set of applyTreeOps is exactly (old tree nodes) minus (new tree nodes).
func TestDeadNodesExact(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]cid.Cid, 4)
	for i := range vals {
		vals[i] = cidOf(t, []byte{0xa1, 0x61, 'v', byte(i)})
	}
	tree := completeTree(mst.NewEmptyTree())
	live := map[string]bool{}
	keyspace := 400
	for round := range 600 {
		old := map[cid.Cid]bool{}
		if round > 0 {
			treeNodes(tree.Root, old)
		}
		var ops []treeOp
		used := map[string]bool{}
		for range 1 + rng.IntN(6) {
			k := fmt.Sprintf("com.example.rec/k%04d", rng.IntN(keyspace))
			if used[k] {
				continue
			}
			used[k] = true
			if live[k] && rng.IntN(2) == 0 {
				ops = append(ops, treeOp{path: k})
				delete(live, k)
			} else {
				v := vals[rng.IntN(len(vals))]
				ops = append(ops, treeOp{path: k, value: &v})
				live[k] = true
			}
		}
		d, err := applyTreeOps(ctx, &tree, ops)
		if err != nil {
			t.Fatal(err)
		}
		cur := map[cid.Cid]bool{}
		treeNodes(tree.Root, cur)
		want := map[cid.Cid]bool{}
		for c := range old {
			if !cur[c] {
				want[c] = true
			}
		}
		if len(d.dead) != len(want) {
			t.Fatalf("round %d: dead %d, want %d", round, len(d.dead), len(want))
		}
		for _, c := range d.dead {
			if !want[c] {
				t.Fatalf("round %d: %s reported dead but live", round, c)
			}
		}
	}
}

// TestBlockGCExact applies random creates/updates/deletes through Apply and checks after
// every commit that SQLite holds exactly the head's blocks.
func TestBlockGCExact(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:gcexact", key)
	rng := rand.New(rand.NewPCG(3, 4))
	live := map[string]bool{}
	for round := range 150 {
		var ops []WriteOp
		used := map[string]bool{}
		for range 1 + rng.IntN(8) {
			rk := fmt.Sprintf("k%03d", rng.IntN(120))
			if used[rk] {
				continue
			}
			used[rk] = true
			// Few distinct bodies: the same record CID sits at several paths.
			body := fmt.Sprintf("body %d", rng.IntN(5))
			switch {
			case live[rk] && rng.IntN(3) == 0:
				ops = append(ops, del(rk))
				delete(live, rk)
			case live[rk]:
				ops = append(ops, update(rk, body, t))
			default:
				ops = append(ops, create(rk, body, t))
				live[rk] = true
			}
		}
		if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		assertExactBlocks(t, r)
	}
	// Delete everything: back to commit + empty root.
	var ops []WriteOp
	for rk := range live {
		ops = append(ops, del(rk))
	}
	for len(ops) > 0 {
		n := min(len(ops), MaxOps)
		if _, err := r.Apply(ctx, WriteRequest{Ops: ops[:n], Signer: key}); err != nil {
			t.Fatal(err)
		}
		ops = ops[n:]
	}
	if n, _ := r.BlockCount(ctx); n != 2 {
		t.Fatalf("empty repo holds %d blocks, want 2", n)
	}
	assertExactBlocks(t, r)
}

func TestBlockGCThousandUpdates(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:gcthousand", key)
	// Some neighbours so the tree has several nodes.
	var ops []WriteOp
	for i := range 100 {
		ops = append(ops, create(fmt.Sprintf("n%03d", i), fmt.Sprintf("n%d", i), t))
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{update("hot", fmt.Sprintf("v%d", i), t)}, Signer: key}); err != nil {
			t.Fatal(err)
		}
	}
	want := expectedBlocks(t, r)
	nodes := map[cid.Cid]bool{}
	head := mustHead(t, r)
	tree, err := mst.LoadTreeFromStore(ctx, blockSource{r.db}, head.Data)
	if err != nil {
		t.Fatal(err)
	}
	treeNodes(tree.Root, nodes)
	// live tree nodes + 101 records + 1 commit
	if n, _ := r.BlockCount(ctx); n != int64(len(nodes)+101+1) || int(n) != len(want) {
		t.Fatalf("blocks %d, want %d nodes + 101 records + commit = %d", n, len(nodes), len(nodes)+102)
	}
	var outbox int
	r.db.QueryRow("SELECT count(*) FROM outbox").Scan(&outbox)
	if outbox != 1+1+1000 {
		t.Fatalf("outbox rows %d", outbox)
	}
}
