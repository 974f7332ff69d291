package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carutil "github.com/ipld/go-car/util"
)

// collector is the blockstore handed to mst.Tree.WriteDiffBlocks, which only calls Put:
// it keeps the blocks in write order so they become exactly the commit's MST blocks.
type collector struct {
	blocks []block
	seen   map[cid.Cid]bool
}

func (c *collector) Put(_ context.Context, b blocks.Block) error {
	if !c.seen[b.Cid()] {
		c.seen[b.Cid()] = true
		c.blocks = append(c.blocks, block{b.Cid(), b.RawData()})
	}
	return nil
}

func (c *collector) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := c.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (c *collector) Has(_ context.Context, k cid.Cid) (bool, error) { return c.seen[k], nil }

func (c *collector) Get(_ context.Context, k cid.Cid) (blocks.Block, error) {
	for _, b := range c.blocks {
		if b.cid.Equals(k) {
			return blocks.NewBlockWithCid(b.data, b.cid)
		}
	}
	return nil, &ipld.ErrNotFound{Cid: k}
}

func (c *collector) GetSize(ctx context.Context, k cid.Cid) (int, error) {
	b, err := c.Get(ctx, k)
	if err != nil {
		return -1, err
	}
	return len(b.RawData()), nil
}

func (c *collector) DeleteBlock(context.Context, cid.Cid) error {
	return errors.New("collector: delete not supported")
}

func (c *collector) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, errors.New("collector: AllKeysChan not supported")
}

func (c *collector) HashOnRead(bool) {}

// carWriter writes a CAR v1 stream.
type carWriter struct{ w io.Writer }

func newCARWriter(w io.Writer, root cid.Cid) (*carWriter, error) {
	if _, err := w.Write(carHeader(root)); err != nil {
		return nil, err
	}
	return &carWriter{w}, nil
}

// carHeader is the length-prefixed CAR v1 header {"roots": [root], "version": 1} in DAG-CBOR, written by hand:
// go-car's WriteHeader goes through reflection (refmt), ~1% of a write's CPU for every commit's event.
func carHeader(root cid.Cid) []byte {
	link := root.Bytes()
	h := make([]byte, 0, 32+len(link))
	h = append(h, 0xa2)                          // map(2)
	h = append(h, 0x65, 'r', 'o', 'o', 't', 's') // "roots" (keys sorted by length, then bytes)
	h = append(h, 0x81, 0xd8, 0x2a)              // array(1), tag(42): a CID link
	h = appendCBORHead(h, 2, uint64(len(link)+1))
	h = append(h, 0x00) // the identity multibase prefix of a binary CID
	h = append(h, link...)
	h = append(h, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01) // "version": 1
	return append(binary.AppendUvarint(nil, uint64(len(h))), h...)
}

// appendCBORHead appends a CBOR head of major type major with argument n, in its shortest form.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
}

func (cw *carWriter) put(c cid.Cid, data []byte) error {
	return carutil.LdWrite(cw.w, c.Bytes(), data)
}

// SyncCAR is what a #sync event carries: a CAR holding only the commit block, its root.
func SyncCAR(commit cid.Cid, commitBlock []byte) []byte {
	var buf bytes.Buffer
	writeCARBlocks(&buf, commit, []block{{commit, commitBlock}}) // writes to memory: no error
	return buf.Bytes()
}

// SyncCAR is the commit's #sync blocks (see the function SyncCAR), taken from its event's CAR; nil if the
// event does not hold the commit block.
func (res *CommitResult) SyncCAR() []byte {
	if res.Event == nil {
		return nil
	}
	var found []byte
	streamCAR(context.Background(), bytes.NewReader(res.Event.Blocks), int64(len(res.Event.Blocks)), func(_ context.Context, c cid.Cid, data []byte) error {
		if c.Equals(res.Commit) {
			found = bytes.Clone(data)
		}
		return nil
	})
	if found == nil {
		return nil
	}
	return SyncCAR(res.Commit, found)
}

func writeCARBlocks(w io.Writer, root cid.Cid, blks []block) error {
	cw, err := newCARWriter(w, root)
	if err != nil {
		return err
	}
	for _, b := range blks {
		if err := cw.put(b.cid, b.data); err != nil {
			return err
		}
	}
	return nil
}
