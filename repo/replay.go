package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/repo/car"
)

// ErrReplayGap: the commits given to ReplayCommits do not continue the repository's head.
var ErrReplayGap = errors.New("replayed commits do not continue the repository head")

// ReplayCommits brings the repository forward to commits it lost: their #commit events, in rev order, as the
// firehose log holds them. Commits with a rev not after the head are skipped (already here). Each other commit
// must chain to the head (since, prevData); its ops are applied to the tree and must give the commit's data
// root, so the result is exactly the repository that made the events. The commits keep their signatures; they
// are stored durably in one transaction, without outbox rows (they are on the stream already). It returns how
// many commits were replayed.
//
// This is how a write acknowledged after its event was logged (WriteRequest.DeferSync) survives power loss
// that took the repository's unsynced tail, and how a repository whose transaction failed after OnStaged
// (ErrBehind) catches up; it then takes writes again.
func (r *Repo) ReplayCommits(ctx context.Context, events []*comatproto.SyncSubscribeRepos_Commit) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	st, err := r.loadState(ctx)
	if err != nil {
		return 0, err
	}
	var staged []*stagedCommit
	for _, evt := range events {
		if evt.Rev <= st.head.Rev {
			continue
		}
		sc, err := r.stageReplay(ctx, st, evt)
		if err != nil {
			r.st = nil
			return 0, fmt.Errorf("replaying commit %s: %w", evt.Rev, err)
		}
		staged = append(staged, sc)
	}
	if len(staged) > 0 {
		err = r.storeCommits(ctx, staged, true)
		r.st = nil // reload on the next write: the clock restarts from the replayed head
		if err != nil {
			return 0, err
		}
	}
	r.behind = false
	return len(staged), nil
}

// stageReplay applies one logged commit to st like stage does, keeping the logged commit block.
func (r *Repo) stageReplay(ctx context.Context, st *writeState, evt *comatproto.SyncSubscribeRepos_Commit) (*stagedCommit, error) {
	prev := st.head
	if evt.Repo != r.did.String() {
		return nil, fmt.Errorf("event of %s, not %s", evt.Repo, r.did)
	}
	if evt.Since == nil || *evt.Since != prev.Rev || evt.PrevData == nil || !cid.Cid(*evt.PrevData).Equals(prev.Data) {
		return nil, fmt.Errorf("%w: head %s", ErrReplayGap, prev.Rev)
	}
	blockMap := map[cid.Cid][]byte{}
	root, _, err := car.Read(ctx, bytes.NewReader(evt.Blocks), int64(len(evt.Blocks)), func(_ context.Context, c cid.Cid, data []byte) error {
		blockMap[c] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	commitCID := cid.Cid(evt.Commit)
	if !root.Equals(commitCID) {
		return nil, fmt.Errorf("CAR root %s is not the commit %s", root, commitCID)
	}
	commitBytes, ok := blockMap[commitCID]
	if !ok {
		return nil, fmt.Errorf("commit block %s missing", commitCID)
	}
	var c atrepo.Commit
	if err := c.UnmarshalCBOR(bytes.NewReader(commitBytes)); err != nil {
		return nil, fmt.Errorf("commit block: %w", err)
	}
	if c.DID != r.did.String() || c.Rev != evt.Rev {
		return nil, fmt.Errorf("commit block is %s@%s, the event %s@%s", c.DID, c.Rev, evt.Repo, evt.Rev)
	}

	changes := make([]*change, len(evt.Ops))
	tops := make([]treeOp, len(evt.Ops))
	for i, op := range evt.Ops {
		coll, rkey, ok := strings.Cut(op.Path, "/")
		if !ok {
			return nil, fmt.Errorf("op path %q", op.Path)
		}
		ch := &change{action: Action(op.Action), collection: coll, rkey: rkey, path: op.Path}
		if op.Cid != nil {
			v := cid.Cid(*op.Cid)
			rec, ok := blockMap[v]
			if !ok {
				return nil, fmt.Errorf("record block %s of %s missing", v, op.Path)
			}
			if ch.blobs, err = BlobRefsFromCBOR(rec); err != nil {
				return nil, fmt.Errorf("record %s: %w", op.Path, err)
			}
			ch.value, ch.record = &v, rec
		}
		changes[i] = ch
		tops[i] = treeOp{path: op.Path, value: ch.value}
	}
	diff, err := applyTreeOps(ctx, &st.tree, tops)
	if err != nil {
		return nil, err
	}
	for i, ch := range changes {
		ch.prev = diff.ops[i].Prev
		var logged *cid.Cid
		if p := evt.Ops[i].Prev; p != nil {
			lc := cid.Cid(*p)
			logged = &lc
		}
		if (ch.prev == nil) != (logged == nil) || (ch.prev != nil && !ch.prev.Equals(*logged)) {
			return nil, fmt.Errorf("op %s: the tree has prev %v, the event %v", ch.path, ch.prev, logged)
		}
	}
	if !diff.root.Equals(c.Data) {
		return nil, fmt.Errorf("ops give data %s, the commit says %s", diff.root, c.Data)
	}

	blks := make([]block, 0, 1+len(diff.nodes)+len(changes))
	blks = append(blks, block{commitCID, commitBytes})
	blks = append(blks, diff.nodes...)
	in := make(map[cid.Cid]bool, len(blks))
	for _, b := range blks {
		in[b.cid] = true
	}
	for _, ch := range changes {
		if ch.value != nil && !in[*ch.value] {
			in[*ch.value] = true
			blks = append(blks, block{*ch.value, ch.record})
		}
	}
	head := Head{Commit: commitCID, Rev: c.Rev, Data: c.Data}
	st.head = head
	return &stagedCommit{prev: prev, head: head, blks: blks, changes: changes, dead: diff.dead}, nil
}
