package repo

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/pdsgo/pds/repo/car"
)

// The full CAR export (sync.getRepo) in the conventional order — the commit, then the MST depth-first with each
// record right after its key — without one query per block:
//   - MST nodes are read ahead breadth-first from the node the walk needs, one `cid IN (...)` query per tree
//     level, up to prefetchNodes nodes at a time; the walk then takes them from memory;
//   - the records come from one ordered scan per collection: in that walk records appear in key order, so the
//     scan's next row is the record of the next key.
// Memory is bounded by the read-ahead (at most prefetchNodes per tree level), not the repository's size; the
// only set kept for the whole walk holds the record CIDs stored at more than one path (each block is written
// once).

// prefetchNodes bounds one breadth-first read-ahead of MST nodes (~300 bytes each).
const prefetchNodes = 512

// inBatchSizes are the prepared `cid IN (...)` arities; unused slots are bound to NULL, which matches nothing.
var inBatchSizes = []int{8, 32, 128}

func blocksInSQL(n int) string {
	return "SELECT cid, data FROM blocks WHERE cid IN (?" + strings.Repeat(", ?", n-1) + ")"
}

const (
	sqlCollections       = "SELECT DISTINCT collection FROM records"
	sqlCollectionRecords = "SELECT r.rkey, r.cid, b.data FROM records r JOIN blocks b ON b.cid = r.cid WHERE r.collection = ? ORDER BY r.rkey"
	sqlSharedRecordCIDs  = "SELECT cid FROM records GROUP BY cid HAVING count(*) > 1"
)

// exportStats counts an export's queries, and the records read alone because the records index did not have
// them where the tree did (zero unless the index and the tree disagree).
type exportStats struct {
	queries, alone int
}

type carWalk struct {
	exportStats
	ctx    context.Context
	q      *cachedTx
	cw     *car.Writer
	recs   *recordScan
	shared map[cid.Cid]bool // record CIDs at several paths
	done   map[cid.Cid]bool // those of them already written
	ahead  map[cid.Cid]*aheadNode
}

// aheadNode is an MST node read ahead of the walk.
type aheadNode struct {
	data []byte
	nd   *mst.NodeData
}

// writeFullCAR writes the commit and the tree under head.
func writeFullCAR(ctx context.Context, q *cachedTx, cw *car.Writer, head Head) (exportStats, error) {
	w := &carWalk{ctx: ctx, q: q, cw: cw, shared: map[cid.Cid]bool{}, done: map[cid.Cid]bool{}, ahead: map[cid.Cid]*aheadNode{}}
	err := w.run(head)
	if w.recs != nil {
		w.queries += w.recs.queries
		w.recs.close()
	}
	return w.exportStats, err
}

func (w *carWalk) run(head Head) error {
	ctx, q := w.ctx, w.q
	if err := copyBlock(ctx, q, w.cw, head.Commit); err != nil {
		return err
	}
	w.queries += 2 // the commit, the shared CIDs
	rows, err := q.QueryContext(ctx, sqlSharedRecordCIDs)
	if err != nil {
		return err
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return err
		}
		c, err := cidFromBytes(b)
		if err != nil {
			rows.Close()
			return err
		}
		w.shared[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if w.recs, err = newRecordScan(ctx, q); err != nil {
		return err
	}
	w.queries++
	return w.node(head.Data)
}

func childCIDs(nd *mst.NodeData) []cid.Cid {
	var kids []cid.Cid
	if nd.Left != nil {
		kids = append(kids, *nd.Left)
	}
	for _, e := range nd.Entries {
		if e.Right != nil {
			kids = append(kids, *e.Right)
		}
	}
	return kids
}

// loadNode returns MST node c: read ahead already, or read now with its subtree's first levels.
func (w *carWalk) loadNode(c cid.Cid) (*aheadNode, error) {
	if n, ok := w.ahead[c]; ok {
		delete(w.ahead, c)
		return n, nil
	}
	frontier, budget := []cid.Cid{c}, prefetchNodes
	for len(frontier) > 0 && budget > 0 {
		level := frontier[:min(len(frontier), budget)]
		budget -= len(level)
		blocks, err := w.getBlocks(level)
		if err != nil {
			return nil, err
		}
		frontier = nil
		for _, k := range level {
			data, ok := blocks[k]
			if !ok {
				return nil, fmt.Errorf("MST node %s: %w", k, &ipld.ErrNotFound{Cid: k})
			}
			nd, err := mst.NodeDataFromCBOR(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("decoding MST node %s: %w", k, err)
			}
			w.ahead[k] = &aheadNode{data: data, nd: nd}
			frontier = append(frontier, childCIDs(nd)...)
		}
	}
	n := w.ahead[c]
	delete(w.ahead, c)
	return n, nil
}

func (w *carWalk) node(c cid.Cid) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	n, err := w.loadNode(c)
	if err != nil {
		return err
	}
	if err := w.cw.Put(c, n.data); err != nil {
		return err
	}
	nd := n.nd
	if nd.Left != nil {
		if err := w.node(*nd.Left); err != nil {
			return err
		}
	}
	var key []byte
	for _, e := range nd.Entries {
		if e.PrefixLen < 0 || int(e.PrefixLen) > len(key) {
			return fmt.Errorf("MST node %s: bad key prefix length", c)
		}
		key = append(key[:e.PrefixLen], e.KeySuffix...)
		if err := w.record(string(key), e.Value); err != nil {
			return err
		}
		if e.Right != nil {
			if err := w.node(*e.Right); err != nil {
				return err
			}
		}
	}
	return nil
}

// record writes the record block of key (unless a CID shared by several paths was already written).
func (w *carWalk) record(key string, c cid.Cid) error {
	write := !w.shared[c] || !w.done[c]
	if w.shared[c] {
		w.done[c] = true
	}
	found, err := w.recs.take(key, c, func(data []byte) error {
		if !write {
			return nil
		}
		return w.cw.Put(c, data)
	})
	if err != nil || found || !write {
		return err
	}
	// Not where the scan expected it (the index and the tree disagree): read it alone.
	w.alone++
	w.queries++
	return copyBlock(w.ctx, w.q, w.cw, c)
}

// getBlocks reads the given blocks with prepared `cid IN (...)` queries.
func (w *carWalk) getBlocks(cids []cid.Cid) (map[cid.Cid][]byte, error) {
	out := make(map[cid.Cid][]byte, len(cids))
	for len(cids) > 0 {
		n := inBatchSizes[len(inBatchSizes)-1]
		for _, size := range inBatchSizes {
			if len(cids) <= size {
				n = size
				break
			}
		}
		batch := cids[:min(n, len(cids))]
		cids = cids[len(batch):]
		args := make([]any, n)
		for i, c := range batch {
			args[i] = c.Bytes()
		}
		w.queries++
		rows, err := w.q.QueryContext(w.ctx, blocksInSQL(n), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var cb, data []byte
			if err := rows.Scan(&cb, &data); err != nil {
				rows.Close()
				return nil, err
			}
			c, err := cidFromBytes(cb)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[c] = data
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recordScan reads every record in MST key order: collections in the byte order of "collection/" (not of the
// collection name: "a.b.c/x" sorts before "a.b/y"), each by rkey.
type recordScan struct {
	ctx         context.Context
	q           *cachedTx
	collections []string
	rows        *sql.Rows
	queries     int
	prefix      string // current collection + "/"
	// the row under the cursor (cid and data valid until the next advance)
	key  string
	cid  sql.RawBytes
	data sql.RawBytes
	ok   bool
}

func newRecordScan(ctx context.Context, q *cachedTx) (*recordScan, error) {
	rows, err := q.QueryContext(ctx, sqlCollections)
	if err != nil {
		return nil, err
	}
	s := &recordScan{ctx: ctx, q: q}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		s.collections = append(s.collections, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(s.collections, func(i, j int) bool { return s.collections[i]+"/" < s.collections[j]+"/" })
	return s, s.advance()
}

// advance moves to the next record; ok is false at the end.
func (s *recordScan) advance() error {
	for {
		if s.rows != nil {
			if s.rows.Next() {
				var rkey sql.RawBytes
				if err := s.rows.Scan(&rkey, &s.cid, &s.data); err != nil {
					return err
				}
				s.key, s.ok = s.prefix+string(rkey), true
				return nil
			}
			err := s.rows.Err()
			s.rows.Close()
			s.rows = nil
			if err != nil {
				return err
			}
		}
		if len(s.collections) == 0 {
			s.ok = false
			return nil
		}
		coll := s.collections[0]
		s.collections = s.collections[1:]
		s.queries++
		rows, err := s.q.QueryContext(s.ctx, sqlCollectionRecords, coll)
		if err != nil {
			return err
		}
		s.rows, s.prefix = rows, coll+"/"
	}
}

// take hands fn the data of the record at key if it is the scan's next one and has CID c, and moves on; found
// is false otherwise. Rows before key (the index and the tree disagree) are skipped.
func (s *recordScan) take(key string, c cid.Cid, fn func([]byte) error) (found bool, err error) {
	for s.ok && s.key < key {
		if err := s.advance(); err != nil {
			return false, err
		}
	}
	if !s.ok || s.key != key {
		return false, nil
	}
	if bytes.Equal(s.cid, c.Bytes()) {
		if err := fn(s.data); err != nil {
			return false, err
		}
		found = true
	}
	return found, s.advance()
}

func (s *recordScan) close() {
	if s.rows != nil {
		s.rows.Close()
	}
}
