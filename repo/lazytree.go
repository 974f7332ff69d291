package repo

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"
)

// defaultMaxTreeNodes bounds the writer's in-memory MST of one repository: past it (counting nodes loaded and
// nodes written since the last trim), the tree is trimmed back to its root once every node is stored. A
// decoded node holds ~1.1 KB of heap (301 MB for the 267k nodes of a 1M-record repository), so ~2.3 MB plus one
// commit's nodes per open repository, whatever the repository's size.
const defaultMaxTreeNodes = 2048

// lazyTree is the writer's MST of the head. Only the nodes the writes needed are in memory; the others are
// stubs (indigo's partial tree: an entry with ChildCID and no Child), loaded from src on demand. Every write
// first loads (hydrate) the nodes its keys may touch, so indigo's insert, remove, proof marking
// (proveMutation) and our dead-node set see exactly the nodes they would see in the complete tree: the
// commits are byte-identical to those of a fully loaded tree.
//
// A stub always names a node of the stored head that no write changed since it was read: a write changes a
// node only after loading it. Such a node is in every later tree, so block GC never deletes it.
type lazyTree struct {
	mst.Tree
	src      mst.MSTBlockSource // where stubs are loaded from; nil for a complete tree
	nodes    int                // nodes loaded plus nodes written since the last trim (an upper bound on growth)
	maxNodes int
	trims    int // times trimmed (tests)
}

// completeTree wraps a tree that has every node in memory (a new repository, tests).
func completeTree(t mst.Tree) lazyTree { return lazyTree{Tree: t} }

// openLazyTree returns the tree of root with only the root node loaded.
func openLazyTree(ctx context.Context, src mst.MSTBlockSource, root cid.Cid, maxNodes int) (lazyTree, error) {
	t := lazyTree{src: src, maxNodes: maxNodes}
	n, err := t.load(ctx, root)
	if err != nil {
		return lazyTree{}, err
	}
	t.Root = n
	if n.IsEmpty() {
		// A decoded empty node has height -1; indigo's insert expects the fresh empty tree.
		t.Tree = mst.NewEmptyTree()
		if _, err := t.RootCID(); err != nil {
			return lazyTree{}, err
		}
		return t, nil
	}
	if n.Height < 0 {
		// A root without keys (not canonical, but loadable): its height is its first key's plus the levels above.
		if err := t.resolveHeight(ctx, n); err != nil {
			return lazyTree{}, err
		}
	}
	return t, nil
}

// resolveHeight sets the height of n, a node without keys, from the first node with a key down its leftmost
// children (loading them).
func (t *lazyTree) resolveHeight(ctx context.Context, n *mst.Node) error {
	var chain []*mst.Node
	for c := n; ; {
		chain = append(chain, c)
		if c.Height >= 0 {
			break
		}
		if len(c.Entries) == 0 || !c.Entries[0].IsChild() {
			return fmt.Errorf("%w: node without keys or children", mst.ErrInvalidTree)
		}
		e := &c.Entries[0]
		if e.Child == nil {
			child, err := t.load(ctx, *e.ChildCID)
			if err != nil {
				return err
			}
			e.Child = child
		}
		c = e.Child
	}
	h := chain[len(chain)-1].Height
	for i := len(chain) - 2; i >= 0; i-- {
		h++
		chain[i].Height = h
	}
	return nil
}

// load reads and decodes one node. Its height is that of its first key (-1 without keys): callers set it
// from the parent's.
func (t *lazyTree) load(ctx context.Context, c cid.Cid) (*mst.Node, error) {
	if t.src == nil {
		return nil, fmt.Errorf("node %s: %w", c, mst.ErrPartialTree)
	}
	blk, err := t.src.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("loading MST node %s: %w", c, err)
	}
	nd, err := mst.NodeDataFromCBOR(bytes.NewReader(blk.RawData()))
	if err != nil {
		return nil, fmt.Errorf("decoding MST node %s: %w", c, err)
	}
	n := nd.Node(&c)
	t.nodes++
	return &n, nil
}

// hydrate loads every node whose closed key range contains one of keys (sorted): the same nodes
// nodesCovering walks. That is a superset of what a write of those keys touches: the path to each key
// (Get, insert, split, compareKey); for a removal, the two subtrees adjacent to the key down their inner
// spines (mergeNodes, the top-of-tree pruning in remove, proveMutation), whose ranges end at the key; for an
// insertion, the subtree the key falls in (proveMutation's compareKey). indigo swallows ErrPartialTree from
// proveMutation, so a missing node there would silently drop proof blocks: hydrating is not optional.
func (t *lazyTree) hydrate(ctx context.Context, keys []string) error {
	if t.Root == nil || t.src == nil || len(keys) == 0 {
		return nil
	}
	return t.hydrateNode(ctx, t.Root, nil, nil, keys)
}

func (t *lazyTree) hydrateNode(ctx context.Context, n *mst.Node, lo, hi []byte, keys []string) error {
	if !anyKeyIn(keys, lo, hi) {
		return nil
	}
	return eachChild(n, lo, hi, func(e *mst.NodeEntry, left, right []byte) error {
		if !anyKeyIn(keys, left, right) {
			return nil
		}
		if e.Child == nil {
			child, err := t.load(ctx, *e.ChildCID)
			if err != nil {
				return err
			}
			child.Height = n.Height - 1
			e.Child = child
		}
		return t.hydrateNode(ctx, e.Child, left, right, keys)
	})
}

// eachChild calls fn for every child entry of n (whose range is [lo, hi]) with the child's closed key range:
// bounded by the keys of its neighbouring entries in n, or n's own bounds (nil: open).
func eachChild(n *mst.Node, lo, hi []byte, fn func(e *mst.NodeEntry, left, right []byte) error) error {
	left := lo
	for j := range n.Entries {
		e := &n.Entries[j]
		if e.IsValue() {
			left = e.Key
			continue
		}
		if !e.IsChild() {
			continue
		}
		right := hi
		for k := j + 1; k < len(n.Entries); k++ {
			if n.Entries[k].IsValue() {
				right = n.Entries[k].Key
				break
			}
		}
		if err := fn(e, left, right); err != nil {
			return err
		}
	}
	return nil
}

// anyKeyIn reports whether one of keys (sorted) lies in [lo, hi]; nil bounds are open.
func anyKeyIn(keys []string, lo, hi []byte) bool {
	i := sort.SearchStrings(keys, string(lo))
	return i < len(keys) && (hi == nil || keys[i] <= string(hi))
}

// lookup returns the value of path, loading the nodes a write of path needs.
func (t *lazyTree) lookup(ctx context.Context, path string) (*cid.Cid, error) {
	if err := t.hydrate(ctx, []string{path}); err != nil {
		return nil, err
	}
	return t.Get([]byte(path))
}

// overLimit reports whether the tree should be trimmed (once every node is stored: see trim).
func (t *lazyTree) overLimit() bool {
	return t.src != nil && t.maxNodes > 0 && t.nodes > t.maxNodes
}

// trim drops every node but the root, keeping its children as stubs. Every node must be clean and stored
// (after the commits that made them are in SQLite): stubs are loaded from src again. It reports whether it
// trimmed.
func (t *lazyTree) trim() bool {
	r := t.Root
	if t.src == nil || r == nil || r.Dirty || r.CID == nil || r.Stub {
		return false
	}
	for _, e := range r.Entries {
		if e.Child != nil && (e.Child.Dirty || e.Child.CID == nil) {
			return false // not written yet: keep it all
		}
	}
	for i, e := range r.Entries {
		if e.Child != nil {
			r.Entries[i] = mst.NodeEntry{ChildCID: e.Child.CID}
		}
	}
	t.nodes = 1
	t.trims++
	return true
}
