package repo

import (
	"bytes"
	"context"
	"errors"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/pdsgo/pds/repo/car"
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
	car.Read(context.Background(), bytes.NewReader(res.Event.Blocks), int64(len(res.Event.Blocks)), func(_ context.Context, c cid.Cid, data []byte) error {
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
	cw, err := car.NewWriter(w, root)
	if err != nil {
		return err
	}
	for _, b := range blks {
		if err := cw.Put(b.cid, b.data); err != nil {
			return err
		}
	}
	return nil
}
