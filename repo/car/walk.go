package car

import (
	"bytes"
	"context"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

// Source gives a Walker the blocks of a repository.
type Source interface {
	// Block returns the block c; ok is false when the source does not have it.
	Block(ctx context.Context, c cid.Cid) (data []byte, ok bool, err error)
}

// Walker checks the MST under a commit and its records, in key order, from a Source, and hands each checked
// node and record to its hooks (where package repo stores them). Every node is checked: canonical encoding,
// strictly increasing valid repo paths across the whole tree, the height of every key, children exactly one
// layer down, no empty nodes but an empty root; every record must be present and parse (BlobRefs). Memory is
// bounded by the tree's depth.
type Walker struct {
	Source Source
	From   string // where the blocks come from, for messages ("the CAR")
	// Node, if set, gets each checked MST node, a parent before its children.
	Node func(ctx context.Context, c cid.Cid, data []byte) error
	// Record, if set, gets each record in key order, with the blobs it references.
	Record func(ctx context.Context, collection syntax.NSID, rkey syntax.RecordKey, c cid.Cid, data []byte, blobs []cid.Cid) error

	Records, Nodes int64 // counted so far
	lastKey        []byte
}

// Walk checks the tree whose root node is root.
func (w *Walker) Walk(ctx context.Context, root cid.Cid) error { return w.node(ctx, root, -1, true) }

// node checks the MST node c and, in key order, its subtrees and records. height is the layer the node must be
// at (-1 for the root, whose layer its keys decide).
func (w *Walker) node(ctx context.Context, c cid.Cid, height int, root bool) error {
	if w.Nodes++; w.Nodes%1024 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	data, ok, err := w.Source.Block(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		return Invalid("MST node %s is missing from %s", c, w.From)
	}
	nd, err := mst.NodeDataFromCBOR(bytes.NewReader(data))
	if err != nil {
		return Invalid("MST node %s: %v", c, err)
	}
	// Keys, rebuilt from the prefix compression, and the canonical encoding they imply.
	keys := make([][]byte, len(nd.Entries))
	canon := mst.NodeData{Left: nd.Left, Entries: make([]mst.EntryData, len(nd.Entries))}
	var prev []byte
	for i, e := range nd.Entries {
		if e.PrefixLen < 0 || e.PrefixLen > int64(len(prev)) {
			return Invalid("MST node %s: bad key prefix length", c)
		}
		key := append(append([]byte{}, prev[:e.PrefixLen]...), e.KeySuffix...)
		if !mst.IsValidKey(key) {
			return Invalid("MST node %s: invalid key", c)
		}
		keys[i] = key
		p := mst.CountPrefixLen(prev, key)
		canon.Entries[i] = mst.EntryData{PrefixLen: int64(p), KeySuffix: key[p:], Value: e.Value, Right: e.Right}
		prev = key
	}
	var cb bytes.Buffer
	if err := canon.MarshalCBOR(&cb); err != nil {
		return err
	}
	if !bytes.Equal(cb.Bytes(), data) {
		return Invalid("MST node %s is not canonically encoded", c)
	}

	layer := height
	if len(keys) > 0 {
		layer = mst.HeightForKey(keys[0])
		if height >= 0 && layer != height {
			return Invalid("MST node %s is at the wrong height", c)
		}
		for _, k := range keys[1:] {
			if mst.HeightForKey(k) != layer {
				return Invalid("MST node %s holds keys of different heights", c)
			}
		}
	} else {
		switch {
		case root && nd.Left != nil:
			return Invalid("MST root %s holds no keys (not a canonical tree)", c)
		case !root && nd.Left == nil:
			return Invalid("empty MST node %s", c)
		}
	}
	hasChild := nd.Left != nil
	for _, e := range nd.Entries {
		hasChild = hasChild || e.Right != nil
	}
	if hasChild && layer <= 0 {
		return Invalid("MST node %s has children below the bottom layer", c)
	}

	if w.Node != nil {
		if err := w.Node(ctx, c, data); err != nil {
			return err
		}
	}
	if nd.Left != nil {
		if err := w.node(ctx, *nd.Left, layer-1, false); err != nil {
			return err
		}
	}
	for i, e := range nd.Entries {
		if w.lastKey != nil && bytes.Compare(keys[i], w.lastKey) <= 0 {
			return Invalid("MST keys out of order at %q", keys[i])
		}
		w.lastKey = keys[i]
		if err := w.record(ctx, string(keys[i]), e.Value); err != nil {
			return err
		}
		if e.Right != nil {
			if err := w.node(ctx, *e.Right, layer-1, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// record checks one record and hands it on.
func (w *Walker) record(ctx context.Context, path string, c cid.Cid) error {
	coll, rkey, err := syntax.ParseRepoPath(path)
	if err != nil {
		return Invalid("invalid record path %q in the MST", path)
	}
	data, ok, err := w.Source.Block(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		return Invalid("record %s (%s) is missing from %s", path, c, w.From)
	}
	refs, err := BlobRefs(data)
	if err != nil {
		return Invalid("could not parse record at '%s': %v", path, err)
	}
	if w.Record != nil {
		if err := w.Record(ctx, coll, rkey, c, data, refs); err != nil {
			return err
		}
	}
	w.Records++
	return nil
}
