package repo

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sort"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"
)

// Action is the kind of a write operation.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// Swap is a compare-and-swap precondition. CID nil means "must not exist".
type Swap struct{ CID *cid.Cid }

// WriteOp is one record write. Record is the record's DAG-CBOR, already validated by the
// caller; nil for delete.
type WriteOp struct {
	Action     Action
	Collection syntax.NSID
	RKey       syntax.RecordKey
	Record     []byte
	SwapRecord *Swap
	// Blobs are the blob references in Record (see blobs.go): each must be a ready blob of the account with the
	// declared MIME type and size (ErrBlobNotFound, *BlobMismatchError), unless the request allows missing blobs.
	Blobs []BlobRef
}

// WriteRequest is one atomic commit. SwapCommit, if set, must equal the current head commit.
type WriteRequest struct {
	Ops        []WriteOp
	SwapCommit *cid.Cid
	Signer     atcrypto.PrivateKey
	// TrimOutboxThrough deletes, in the commit's transaction, outbox rows with rev <= it: the caller knows
	// they are sequenced. Free, unlike a TrimOutbox call (its own fsync).
	TrimOutboxThrough string
	// OnCommit, if set, runs after the commit is durable and before the repo's write lock is released, so
	// callers can hand commits to the firehose in commit order.
	OnCommit func(*CommitResult)
	// OnStaged, if set, runs for the commit once it is built and before its transaction, in commit order under
	// the write lock; the function it returns runs when the transaction is over, with its error. The server
	// logs the commit there, so the log's fsync and this transaction overlap. If the transaction fails, the
	// repository refuses writes (ErrBehind) until ReplayCommits has brought it forward to what was logged.
	OnStaged func(*CommitResult) (stored func(error))
	// MissingBlobsOK lets records reference blobs the account does not have (a repository import: the blobs
	// are uploaded afterwards, see ListMissingBlobs).
	MissingBlobsOK bool
	// OnBlobsUnreferenced, if set, runs inside the commit's transaction before it commits when the commit leaves
	// a blob referenced by no record, so the caller can durably schedule its collection; an error aborts the commit.
	OnBlobsUnreferenced func(context.Context) error
	// DeferSync commits without waiting for fsync (an open repository's connections run synchronous=NORMAL): the commit
	// survives a crash of the process at once, and power loss once the repository's WAL is next synced
	// (checkpoint, close, Store.Sync). The caller makes the commit durable another way: the server acknowledges
	// a write once its #commit event (which carries every new block) is fsynced in the firehose log, and
	// start-up recovery replays logged commits a repository lost (ReplayCommits). Writes to many accounts then
	// share one fsync. A group commit with any write that does not defer syncs. Such a commit gets no outbox
	// row either (its event is not stored twice): if the process dies after the repository stored it and
	// before the log did, it was never acknowledged, and the caller's recovery announces the repository's head.
	DeferSync bool
}

// OpResult reports one request op, in request order. Action is the effective action (an
// update of a missing record is a "create"). An update to an identical record changed
// nothing: it has CID == Prev and does not appear in the Event.
type OpResult struct {
	Action     Action
	Collection string
	RKey       string
	CID        *cid.Cid
	Prev       *cid.Cid
}

// CommitResult describes a commit (or, with NoChange, the unchanged head).
type CommitResult struct {
	DID      syntax.DID
	Commit   cid.Cid
	Rev      string
	Since    *string
	Data     cid.Cid
	PrevData *cid.Cid
	Ops      []OpResult
	// Event is the complete #commit (Seq 0), also stored in the outbox unless DeferSync. Nil with NoChange.
	Event *comatproto.SyncSubscribeRepos_Commit
	// NoChange: every op was a no-op, no commit was made; Commit/Rev/Data are the head.
	NoChange bool
}

// Head is the current commit of a repository.
type Head struct {
	Commit cid.Cid
	Rev    string
	Data   cid.Cid
}

// writeState is the in-memory state of the writer: the clean MST of the head, loaded lazily (lazytree.go).
type writeState struct {
	tree  lazyTree
	head  Head
	clock syntax.TIDClock // restored from head.Rev: revs never go backwards
}

// change is one effective (non-no-op) write inside a commit.
type change struct {
	action     Action
	collection string
	rkey       string
	path       string
	value      *cid.Cid // nil for delete
	record     []byte
	prev       *cid.Cid // filled by commit, from the tree
	blobs      []BlobRef
}

// Apply commits req atomically. See the package documentation for the semantics.
func (r *Repo) Apply(ctx context.Context, req WriteRequest) (*CommitResult, error) {
	if req.Signer == nil {
		return nil, fmt.Errorf("%w: no signer", ErrInvalidWrite)
	}
	if len(req.Ops) > MaxOps {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManyOps, len(req.Ops), MaxOps)
	}
	// Validate and hash outside the lock.
	changes := make([]*change, len(req.Ops))
	seen := make(map[string]bool, len(req.Ops))
	recordBytes := 0
	for i, op := range req.Ops {
		path := op.Collection.String() + "/" + op.RKey.String()
		if _, _, err := syntax.ParseRepoPath(path); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrInvalidWrite, path, err)
		}
		if seen[path] {
			return nil, fmt.Errorf("%w: duplicate path %q", ErrInvalidWrite, path)
		}
		seen[path] = true
		ch := &change{action: op.Action, collection: op.Collection.String(), rkey: op.RKey.String(), path: path, blobs: op.Blobs}
		switch op.Action {
		case ActionCreate, ActionUpdate:
			if len(op.Record) == 0 {
				return nil, fmt.Errorf("%w: %s %q without a record", ErrInvalidWrite, op.Action, path)
			}
			c, err := cborPrefix.Sum(op.Record)
			if err != nil {
				return nil, err
			}
			ch.value, ch.record = &c, op.Record
			recordBytes += len(op.Record)
		case ActionDelete:
		default:
			return nil, fmt.Errorf("%w: unknown action %q", ErrInvalidWrite, op.Action)
		}
		changes[i] = ch
	}
	// Refuse before touching the tree what can be refused early.
	if recordBytes > MaxCommitBytes {
		return nil, fmt.Errorf("%w: %d bytes of records", ErrTooLarge, recordBytes)
	}

	w := &pendingWrite{ctx: ctx, req: req, changes: changes, done: make(chan struct{})}
	r.qmu.Lock()
	r.queue = append(r.queue, w)
	r.qmu.Unlock()
	r.wmu.Lock()
	select {
	case <-w.done: // a writer before us took it into its group
	default:
		r.writeGroup(ctx)
	}
	r.wmu.Unlock()
	<-w.done
	return w.res, w.err
}

// pendingWrite is one Apply call waiting for, or taken into, a group commit.
type pendingWrite struct {
	ctx     context.Context
	req     WriteRequest
	changes []*change
	done    chan struct{} // closed when res/err are final
	res     *CommitResult
	err     error
	staged  *stagedCommit // the commit it made, while its group is being stored
}

func (w *pendingWrite) finish(res *CommitResult, err error) {
	w.res, w.err = res, err
	close(w.done)
}

// writeGroup is group commit: the writer takes every Apply waiting for the repository and applies them in
// order to the in-memory tree, each as its own signed commit chained to the previous one (so each is checked
// against the state the previous left: swaps, existing records), then stores all their commits in ONE SQLite
// transaction (one fsync), calls their OnCommit in order and answers each. A write that fails its checks fails
// alone. If the transaction fails, the whole group fails and the tree is reloaded. Caller holds wmu.
func (r *Repo) writeGroup(ctx context.Context) {
	r.qmu.Lock()
	group := r.queue
	r.queue = nil
	r.qmu.Unlock()
	// One write's cancelled request must not abort the others' transaction.
	ctx = context.WithoutCancel(ctx)
	var staged []*pendingWrite // in this transaction, in order
	for _, w := range group {
		res, mutated, err := r.stageWrite(w)
		switch {
		case err != nil && mutated:
			// It failed after changing the tree (too large, say): store what the group made so far, then
			// reload the tree from SQLite for the rest.
			w.finish(nil, err)
			r.storeGroup(ctx, staged)
			staged = nil
			r.st = nil
		case err != nil:
			w.finish(nil, err)
		default:
			w.res = res
			staged = append(staged, w)
		}
	}
	r.storeGroup(ctx, staged)
}

// stageWrite checks w against the current state and, unless it changes nothing, applies it to the tree and
// builds its commit (w.staged). mutated reports whether a failure left the tree changed. Caller holds wmu.
func (r *Repo) stageWrite(w *pendingWrite) (res *CommitResult, mutated bool, err error) {
	ctx, req, changes := w.ctx, w.req, w.changes
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if r.behind {
		return nil, false, ErrBehind
	}
	st, err := r.loadState(ctx)
	if err != nil {
		return nil, false, err
	}
	if req.SwapCommit != nil && !req.SwapCommit.Equals(st.head.Commit) {
		return nil, false, fmt.Errorf("%w: commit is %s, not %s", ErrInvalidSwap, st.head.Commit, req.SwapCommit)
	}
	if !req.MissingBlobsOK {
		if err := r.checkBlobRefs(ctx, req.Ops); err != nil {
			return nil, false, err
		}
	}

	results := make([]OpResult, len(changes))
	effective := make([]*change, 0, len(changes))
	for i, ch := range changes {
		cur, err := st.tree.lookup(ctx, ch.path)
		if err != nil {
			return nil, false, err
		}
		if sw := req.Ops[i].SwapRecord; sw != nil {
			switch {
			case sw.CID == nil && cur != nil:
				return nil, false, fmt.Errorf("%w: record %s exists", ErrInvalidSwap, ch.path)
			case sw.CID != nil && cur == nil:
				return nil, false, fmt.Errorf("%w: record %s does not exist", ErrInvalidSwap, ch.path)
			case sw.CID != nil && !sw.CID.Equals(*cur):
				return nil, false, fmt.Errorf("%w: record %s is %s, not %s", ErrInvalidSwap, ch.path, cur, sw.CID)
			}
		}
		results[i] = OpResult{Action: ch.action, Collection: ch.collection, RKey: ch.rkey, CID: ch.value, Prev: cur}
		switch ch.action {
		case ActionCreate:
			if cur != nil {
				return nil, false, fmt.Errorf("%w: %s", ErrRecordExists, ch.path)
			}
		case ActionUpdate:
			if cur == nil {
				ch.action = ActionCreate
				results[i].Action = ActionCreate
			} else if cur.Equals(*ch.value) {
				continue // identical: dropped
			}
		case ActionDelete:
			if cur == nil {
				return nil, false, fmt.Errorf("%w: %s", ErrRecordNotFound, ch.path)
			}
		}
		effective = append(effective, ch)
	}
	if len(effective) == 0 {
		// The head may be a commit of this group, not stored yet: the answer waits for the transaction.
		return &CommitResult{
			DID: r.did, Commit: st.head.Commit, Rev: st.head.Rev, Data: st.head.Data,
			Ops: results, NoChange: true,
		}, false, nil
	}
	// A commit whose event the caller makes durable (DeferSync) needs no outbox row: if the process dies
	// before the event is logged, the write was not acknowledged, and recovery announces the repo with #sync.
	sc, err := r.stage(ctx, st, req.Signer, effective, !req.DeferSync)
	if err != nil {
		return nil, true, err
	}
	sc.trimThrough, sc.onUnref = req.TrimOutboxThrough, req.OnBlobsUnreferenced
	sc.res.Ops = results
	w.staged = sc
	return sc.res, false, nil
}

// storeGroup stores the staged commits of ws in one transaction, then runs their OnCommit in order and
// answers every write of ws. If the transaction fails, they all fail and the tree is reloaded on the next
// write. Caller holds wmu.
func (r *Repo) storeGroup(ctx context.Context, ws []*pendingWrite) {
	if len(ws) == 0 {
		return
	}
	var commits []*stagedCommit
	var stored []func(error)
	deferSync := true
	for _, w := range ws {
		if w.staged != nil {
			commits = append(commits, w.staged)
			deferSync = deferSync && w.req.DeferSync
			if w.req.OnStaged != nil {
				stored = append(stored, w.req.OnStaged(w.res))
			}
		}
	}
	err := r.storeCommits(ctx, commits, !deferSync)
	for _, f := range stored {
		f(err)
	}
	if err != nil {
		r.st = nil
		r.behind = len(stored) > 0
		for _, w := range ws {
			w.finish(nil, err)
		}
		return
	}
	for _, w := range ws {
		if w.staged != nil && w.req.OnCommit != nil {
			w.req.OnCommit(w.res)
		}
		w.finish(w.res, nil)
	}
}

// loadState returns the writer state, opening the MST from SQLite the first time (or after a failed commit
// dropped it) with only its root node in memory (lazytree.go): the nodes each write needs are loaded by that
// write. A tree grown past its bound is trimmed back to its root here, before a write, once SQLite's head is
// the in-memory head: then every node is stored (not so between the writes of one group commit). Caller holds
// wmu.
func (r *Repo) loadState(ctx context.Context) (*writeState, error) {
	if r.st != nil {
		if r.st.tree.overLimit() {
			if h, err := headRow(ctx, r.q()); err == nil && h.Commit.Equals(r.st.head.Commit) {
				r.st.tree.trim()
			}
		}
		return r.st, nil
	}
	head, err := headRow(ctx, r.q())
	if err != nil {
		return nil, err
	}
	rev, err := syntax.ParseTID(head.Rev)
	if err != nil {
		return nil, fmt.Errorf("corrupt head rev: %w", err)
	}
	tree, err := openLazyTree(ctx, blockSource{r.q()}, head.Data, defaultMaxTreeNodes)
	if err != nil {
		return nil, fmt.Errorf("loading MST: %w", err)
	}
	r.st = &writeState{tree: tree, head: head, clock: syntax.ClockFromTID(rev)}
	return r.st, nil
}

// stagedCommit is a commit applied to the in-memory state and not stored yet.
type stagedCommit struct {
	prev, head  Head
	blks        []block
	changes     []*change
	dead        []cid.Cid
	event       []byte
	res         *CommitResult
	trimThrough string
	onUnref     func(context.Context) error
}

// signedCommitBlock signs a v3 commit of did over the data root at rev and returns its CID and DAG-CBOR bytes: the
// head block of every write and of an import.
func signedCommitBlock(did syntax.DID, data cid.Cid, rev string, signer atcrypto.PrivateKey) (cid.Cid, []byte, error) {
	c := atrepo.Commit{DID: did.String(), Version: atrepo.ATPROTO_REPO_VERSION, Data: data, Rev: rev}
	if err := c.Sign(signer); err != nil {
		return cid.Undef, nil, fmt.Errorf("signing commit: %w", err)
	}
	var cbuf bytes.Buffer
	if err := c.MarshalCBOR(&cbuf); err != nil {
		return cid.Undef, nil, err
	}
	commitCID, err := cborPrefix.Sum(cbuf.Bytes())
	if err != nil {
		return cid.Undef, nil, err
	}
	return commitCID, cbuf.Bytes(), nil
}

// stage applies changes to st.tree, signs a commit chained to st.head and builds its event (serialized for
// the outbox if outbox); st.head moves to the new commit. On failure the tree may have changed: the caller
// must drop r.st. Caller holds wmu.
func (r *Repo) stage(ctx context.Context, st *writeState, signer atcrypto.PrivateKey, changes []*change, outbox bool) (*stagedCommit, error) {
	prev := st.head // zero for the initial commit
	first := !prev.Commit.Defined()

	tops := make([]treeOp, len(changes))
	for i, ch := range changes {
		tops[i] = treeOp{path: ch.path, value: ch.value}
	}
	diff, err := applyTreeOps(ctx, &st.tree, tops)
	if err != nil {
		return nil, err
	}
	for i, ch := range changes {
		ch.prev = diff.ops[i].Prev
		if (ch.action == ActionCreate) != (ch.prev == nil) {
			return nil, fmt.Errorf("internal: %s %s: tree disagrees (prev %v)", ch.action, ch.path, ch.prev)
		}
	}

	// Commit() order matters: the diff was written before anything cleared the dirty flags.
	rev := st.clock.Next().String()
	commitCID, commitBytes, err := signedCommitBlock(r.did, diff.root, rev, signer)
	if err != nil {
		return nil, err
	}

	// The commit's blocks: commit, every MST block of the diff (with the unchanged neighbours
	// needed for inversion), new record blocks.
	blks := make([]block, 0, 1+len(diff.nodes)+len(changes))
	blks = append(blks, block{commitCID, commitBytes})
	blks = append(blks, diff.nodes...)
	inBlks := make(map[cid.Cid]bool, len(blks))
	for _, b := range blks {
		inBlks[b.cid] = true
	}
	size := 0
	for _, ch := range changes {
		if ch.value != nil && !inBlks[*ch.value] {
			inBlks[*ch.value] = true
			blks = append(blks, block{*ch.value, ch.record})
		}
	}
	for _, b := range blks {
		size += len(b.data)
	}
	if size > MaxCommitBytes {
		return nil, fmt.Errorf("%w: %d bytes of blocks", ErrTooLarge, size)
	}

	var car bytes.Buffer
	if err := writeCARBlocks(&car, commitCID, blks); err != nil {
		return nil, err
	}
	ev := &comatproto.SyncSubscribeRepos_Commit{
		Repo:   r.did.String(),
		Rev:    rev,
		Commit: lexutil.LexLink(commitCID),
		Blocks: car.Bytes(),
		Ops:    make([]*comatproto.SyncSubscribeRepos_RepoOp, 0, len(changes)),
		Time:   time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		Blobs:  []lexutil.LexLink{},
	}
	res := &CommitResult{DID: r.did, Commit: commitCID, Rev: rev, Data: diff.root, Event: ev}
	if !first {
		since, pd := prev.Rev, prev.Data
		ev.Since, res.Since = &since, &since
		ev.PrevData, res.PrevData = (*lexutil.LexLink)(&pd), &pd
	}
	for _, ch := range changes {
		op := &comatproto.SyncSubscribeRepos_RepoOp{Action: string(ch.action), Path: ch.path}
		if ch.value != nil {
			op.Cid = (*lexutil.LexLink)(ch.value)
		}
		if ch.prev != nil {
			op.Prev = (*lexutil.LexLink)(ch.prev)
		}
		ev.Ops = append(ev.Ops, op)
		res.Ops = append(res.Ops, OpResult{Action: ch.action, Collection: ch.collection, RKey: ch.rkey, CID: ch.value, Prev: ch.prev})
	}
	var event []byte
	if outbox {
		var evbuf bytes.Buffer
		if err := ev.MarshalCBOR(&evbuf); err != nil {
			return nil, err
		}
		event = evbuf.Bytes()
	}

	newHead := Head{Commit: commitCID, Rev: rev, Data: diff.root}
	st.head = newHead
	return &stagedCommit{prev: prev, head: newHead, blks: blks, changes: changes, dead: diff.dead, event: event, res: res}, nil
}

// storeCommits writes consecutive commits in one transaction: with durable, one fsync; without, none (see
// WriteRequest.DeferSync).
func (r *Repo) storeCommits(ctx context.Context, commits []*stagedCommit, durable bool) error {
	if len(commits) == 0 {
		return nil
	}
	ctx = sqlContext(ctx)
	var tx *sql.Tx
	if durable && r.relaxed {
		conn, err := r.durableConn(ctx)
		if err != nil {
			return err
		}
		defer conn.release(ctx)
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			return err
		}
	} else {
		var err error
		if tx, err = r.db.BeginTx(ctx, nil); err != nil {
			return err
		}
	}
	defer tx.Rollback()
	q := r.cachedTx(tx)
	trim, inserted := "", ""
	for _, c := range commits {
		if err := writeCommit(ctx, tx, q, c); err != nil {
			return err
		}
		trim = max(trim, c.trimThrough)
		if c.event != nil {
			inserted = max(inserted, c.head.Rev)
		}
	}
	// The outbox is almost always empty now (DeferSync commits add no row): no DELETE per commit then.
	if trim != "" && r.outboxMax != "" {
		if _, err := q.ExecContext(ctx, sqlTrimOutbox, trim); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if trim >= r.outboxMax {
		r.outboxMax = ""
	}
	r.outboxMax = max(r.outboxMax, inserted)
	r.commitTxs++
	r.ckpt.Wrote(commitWeight(commits))
	return nil
}

// writeCommit writes one commit inside tx: blocks, records index, blob links, GC, head, outbox.
func writeCommit(ctx context.Context, tx *sql.Tx, q *cachedTx, c *stagedCommit) error {
	prev, head, blks, changes, deadNodes, onUnref := c.prev, c.head, c.blks, c.changes, c.dead, c.onUnref
	for _, b := range blks {
		if _, err := q.ExecContext(ctx, sqlInsertBlock, b.cid.Bytes(), head.Rev, b.data); err != nil {
			return err
		}
	}
	for _, ch := range changes {
		var err error
		if ch.value != nil {
			_, err = q.ExecContext(ctx, sqlUpsertRecord, ch.collection, ch.rkey, ch.value.Bytes(), head.Rev)
		} else {
			_, err = q.ExecContext(ctx, sqlDeleteRecord, ch.collection, ch.rkey)
		}
		if err != nil {
			return err
		}
	}
	if unref, err := linkBlobs(ctx, tx, changes, time.Now()); err != nil {
		return err
	} else if unref && onUnref != nil {
		if err := onUnref(ctx); err != nil {
			return err
		}
	}
	// GC, after the inserts so nothing just written is deleted by a coincidence of CIDs.
	for _, dead := range deadNodes {
		if _, err := q.ExecContext(ctx, sqlDeleteBlock, dead.Bytes()); err != nil {
			return err
		}
	}
	for _, ch := range changes {
		if ch.prev == nil || (ch.value != nil && ch.prev.Equals(*ch.value)) {
			continue
		}
		// The same record CID can sit at several paths: only drop it when no row uses it.
		if _, err := q.ExecContext(ctx, sqlDeleteRecBlock, ch.prev.Bytes()); err != nil {
			return err
		}
	}
	if prev.Commit.Defined() {
		if _, err := q.ExecContext(ctx, sqlDeleteBlock, prev.Commit.Bytes()); err != nil {
			return err
		}
	}
	if _, err := q.ExecContext(ctx, sqlUpsertHead, head.Commit.Bytes(), head.Rev, head.Data.Bytes()); err != nil {
		return err
	}
	if c.event == nil {
		return nil // a replayed or DeferSync commit: no outbox row (see stageWrite)
	}
	_, err := q.ExecContext(ctx, sqlInsertOutbox, head.Rev, c.event)
	return err
}

// durableConn is a connection of a relaxed pool (synchronous=NORMAL) switched to FULL until release, which
// switches it back: for the writes that must survive power loss on their own (commits without DeferSync,
// replayed commits, blob uploads). The pragma is per connection, and the commit path (DeferSync, the hot one)
// then pays nothing for it.
type durableConn struct{ *sql.Conn }

func (r *Repo) durableConn(ctx context.Context) (durableConn, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return durableConn{}, err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+syncFull); err != nil {
		conn.Close()
		return durableConn{}, err
	}
	return durableConn{conn}, nil
}

func (c durableConn) release(ctx context.Context) {
	if _, err := c.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = "+syncNormal); err != nil {
		// Never hand a FULL connection back to the pool as it is: the driver discards one that says it is bad.
		c.Raw(func(any) error { return driver.ErrBadConn })
	}
	c.Close()
}

// execDurable runs one statement that must be durable when it returns (fsync), whatever the pool's level.
func (r *Repo) execDurable(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if !r.relaxed {
		return r.db.ExecContext(ctx, query, args...)
	}
	conn, err := r.durableConn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.release(ctx)
	return conn.ExecContext(ctx, query, args...)
}

// treeOp is one MST mutation: value nil deletes path.
type treeOp struct {
	path  string
	value *cid.Cid
}

// treeDiff is what applyTreeOps changed.
type treeDiff struct {
	root  cid.Cid
	ops   []*atrepo.Operation // per input op, with Prev from the tree
	nodes []block             // every MST block from WriteDiffBlocks, in write order
	dead  []cid.Cid           // MST nodes of the old tree that are not in the new one
}

// applyTreeOps mutates tree (clean: the head's) and returns the diff. It is the only way the write path
// changes a tree; the interop commit-proof tests call it directly, because their keys are not valid repo
// paths. Before the ops, and before each op (an earlier op may have moved nodes next to its key), it loads
// the nodes the ops may touch (lazyTree.hydrate).
func applyTreeOps(ctx context.Context, tree *lazyTree, ops []treeOp) (*treeDiff, error) {
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.path
	}
	sort.Strings(keys)
	if err := tree.hydrate(ctx, keys); err != nil {
		return nil, err
	}
	before := map[cid.Cid]bool{}
	if err := nodesCovering(tree.Root, nil, nil, keys, before); err != nil {
		return nil, err
	}
	d := &treeDiff{ops: make([]*atrepo.Operation, len(ops))}
	for i, op := range ops {
		if len(ops) > 1 {
			if err := tree.hydrate(ctx, []string{op.path}); err != nil {
				return nil, err
			}
		}
		o, err := atrepo.ApplyOp(&tree.Tree, op.path, op.value)
		if err != nil {
			return nil, fmt.Errorf("applying %s: %w", op.path, err)
		}
		d.ops[i] = o
		if tree.IsEmpty() && tree.Root.Height != 0 {
			// indigo leaves an emptied root at its old height; keys inserted later would then hang below
			// empty layers: a non-canonical tree whose root no consumer can reproduce.
			tree.Tree = mst.NewEmptyTree()
		}
	}
	col := &collector{seen: map[cid.Cid]bool{}}
	root, err := tree.WriteDiffBlocks(ctx, col)
	if err != nil {
		return nil, err
	}
	d.root, d.nodes = *root, col.blocks
	tree.nodes += len(col.blocks)
	after := map[cid.Cid]bool{}
	if err := nodesCovering(tree.Root, nil, nil, keys, after); err != nil {
		return nil, err
	}
	for c := range before {
		if !after[c] && !col.seen[c] {
			d.dead = append(d.dead, c)
		}
	}
	return d, nil
}

// nodesCovering adds to out the CID of every node whose closed key range [lo, hi] contains
// one of keys (sorted); nil bounds are open. The range of a child is bounded by the keys of
// its neighbouring entries in the parent, so a node lying next to a key (merged when the key
// is deleted, split when it is inserted) is covered as well. Nodes outside every such range
// are untouched by the ops, so the nodes a commit replaces are exactly
// nodesCovering(old) minus nodesCovering(new).
func nodesCovering(n *mst.Node, lo, hi []byte, keys []string, out map[cid.Cid]bool) error {
	if n == nil {
		return mst.ErrPartialTree
	}
	if !anyKeyIn(keys, lo, hi) {
		return nil
	}
	if n.CID != nil {
		out[*n.CID] = true
	}
	return eachChild(n, lo, hi, func(e *mst.NodeEntry, left, right []byte) error {
		if e.Child == nil {
			if anyKeyIn(keys, left, right) { // only an error if the range matters
				return mst.ErrPartialTree
			}
			return nil
		}
		return nodesCovering(e.Child, left, right, keys, out)
	})
}

type block struct {
	cid  cid.Cid
	data []byte
}
