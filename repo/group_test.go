package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
)

// eventLog collects the results handed to OnCommit, in call order.
type eventLog struct {
	mu  sync.Mutex
	res []*CommitResult
}

func (l *eventLog) onCommit(res *CommitResult) {
	l.mu.Lock()
	l.res = append(l.res, res)
	l.mu.Unlock()
}

// checkChain verifies every event with checkEvent against the one before it, starting from head.
func (l *eventLog) checkChain(t *testing.T, from Head, pub atcrypto.PublicKey) {
	t.Helper()
	prev := from
	for i, res := range l.res {
		checkEvent(t, res, &prev, pub)
		if res.Since == nil || *res.Since != prev.Rev || res.PrevData == nil || *res.PrevData != prev.Data {
			t.Fatalf("event %d: since/prevData do not chain", i)
		}
		prev = Head{Commit: res.Commit, Rev: res.Rev, Data: res.Data}
	}
}

// queued waits until n Apply calls wait in r's queue.
func queued(t *testing.T, r *Repo, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.qmu.Lock()
		got := len(r.queue)
		r.qmu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// bigRecord is a record of about size bytes of DAG-CBOR.
func bigRecord(t *testing.T, size int) []byte {
	t.Helper()
	b, err := atdata.MarshalCBOR(map[string]any{"$type": "app.bsky.feed.post", "text": strings.Repeat("x", size-40)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroupCommit: writes queued behind the writer are stored in one transaction, each as its own commit
// chained to the previous; the ones that fail their checks (record exists, swap mismatch, a commit too large
// once its MST blocks are counted, a cancelled request) fail alone.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:group", key)
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create("existing", "x", t)}, Signer: key}); err != nil {
		t.Fatal(err)
	}
	start := *mustHead(t, r)
	stale := start.Commit
	txsBefore := r.commitTxs

	log := &eventLog{}
	cancelled, cancel := context.WithCancel(ctx)
	type write struct {
		ctx     context.Context
		req     WriteRequest
		wantErr error
	}
	writes := []write{
		{ctx, WriteRequest{Ops: []WriteOp{create("a", "a", t)}}, nil},
		{ctx, WriteRequest{Ops: []WriteOp{create("existing", "y", t)}}, ErrRecordExists},
		{ctx, WriteRequest{Ops: []WriteOp{create("b", "b", t), update("a", "a2", t)}}, nil}, // sees a
		{ctx, WriteRequest{Ops: []WriteOp{create("c", "c", t)}, SwapCommit: &stale}, ErrInvalidSwap},
		{ctx, WriteRequest{Ops: []WriteOp{{Action: ActionCreate, Collection: postNSID, RKey: "big", Record: bigRecord(t, MaxCommitBytes-10)}}}, ErrTooLarge},
		{ctx, WriteRequest{Ops: []WriteOp{del("existing")}}, nil}, // after the tree was reloaded
		{cancelled, WriteRequest{Ops: []WriteOp{create("d", "d", t)}}, context.Canceled},
		{ctx, WriteRequest{Ops: []WriteOp{update("b", "b", t)}}, nil}, // identical: no change
		{ctx, WriteRequest{Ops: []WriteOp{create("e", "e", t)}}, nil},
	}
	results := make([]*CommitResult, len(writes))
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	r.wmu.Lock() // the writer is busy: everything queues behind it, in this order
	for i, w := range writes {
		w.req.Signer = key
		w.req.OnCommit = log.onCommit
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.Apply(w.ctx, w.req)
		}()
		queued(t, r, i+1)
	}
	cancel()
	r.wmu.Unlock()
	wg.Wait()

	for i, w := range writes {
		if w.wantErr == nil && errs[i] != nil || w.wantErr != nil && !errors.Is(errs[i], w.wantErr) {
			t.Fatalf("write %d: error %v, want %v", i, errs[i], w.wantErr)
		}
	}
	// Two transactions: the writes before the oversized one, then the rest on a reloaded tree.
	if got := r.commitTxs - txsBefore; got != 2 {
		t.Fatalf("%d transactions, want 2", got)
	}
	if len(log.res) != 4 {
		t.Fatalf("%d commits, want 4", len(log.res))
	}
	for i, k := range []int{0, 2, 5, 8} {
		if log.res[i] != results[k] {
			t.Fatalf("OnCommit %d is not write %d", i, k)
		}
	}
	if !results[7].NoChange || results[7].Commit != results[5].Commit {
		t.Fatalf("no-op write: %+v", results[7])
	}
	log.checkChain(t, start, pubKey(t, key))
	head := mustHead(t, r)
	if head.Commit != results[8].Commit {
		t.Fatal("head is not the last commit")
	}
	for rk, want := range map[string]bool{"a": true, "b": true, "e": true, "existing": false, "c": false, "d": false, "big": false} {
		_, _, err := r.GetRecord(ctx, postNSID.String(), rk)
		if (err == nil) != want {
			t.Errorf("record %s: %v", rk, err)
		}
	}
	assertExactBlocks(t, r)
	evs, err := r.PendingEvents(ctx, start.Rev)
	if err != nil || len(evs) != 4 {
		t.Fatalf("outbox: %d events, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.Rev != log.res[i].Rev {
			t.Fatalf("outbox event %d is %s, want %s", i, ev.Rev, log.res[i].Rev)
		}
	}
}

// TestGroupCommitTransactionFails: when the group's transaction fails, every write of the group fails, none
// reaches OnCommit, and the next write starts again from what SQLite holds.
func TestGroupCommitTransactionFails(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:groupfail", key)
	start := *mustHead(t, r)
	log := &eventLog{}
	// The third commit's record row is refused inside the transaction.
	if _, err := r.db.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON records
		WHEN NEW.rkey = 'k2' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	r.wmu.Lock()
	for i := range 3 {
		req := WriteRequest{Ops: []WriteOp{create(fmt.Sprint("k", i), "v", t)}, Signer: key, OnCommit: log.onCommit}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Apply(ctx, req)
		}()
		queued(t, r, i+1)
	}
	r.wmu.Unlock()
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("write %d: %v, want the transaction's error", i, err)
		}
	}
	if len(log.res) != 0 {
		t.Fatal("OnCommit ran for a failed group")
	}
	if h := mustHead(t, r); h.Commit != start.Commit {
		t.Fatal("head moved")
	}
	if _, err := r.db.ExecContext(ctx, "DROP TRIGGER refuse"); err != nil {
		t.Fatal(err)
	}
	// The next write works on the reloaded state and chains to the stored head.
	head := *mustHead(t, r)
	res, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create("after", "v", t)}, Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	checkEvent(t, res, &head, pubKey(t, key))
	assertExactBlocks(t, r)
}

// TestGroupCommitConcurrent: many writers on one repository, mixing creates, updates, deletes and stale swaps;
// the events handed to OnCommit form one unbroken chain, each verified, matching the outbox and the final
// records.
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:groupconc", key)
	start := *mustHead(t, r)
	txsBefore := r.commitTxs
	log := &eventLog{}
	const writers, writes = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*writes)
	var commits sync.Map // rkey -> live
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				rk := fmt.Sprintf("w%d-%03d", w, i)
				ops := []WriteOp{create(rk, "v", t)}
				switch {
				case i%5 == 3: // update the previous record and delete the one before it
					ops = append(ops, update(fmt.Sprintf("w%d-%03d", w, i-1), "v2", t), del(fmt.Sprintf("w%d-%03d", w, i-2)))
				case i%7 == 6: // a stale swap fails alone (then the write is made without it)
					stale := start.Commit
					_, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key, SwapCommit: &stale, OnCommit: log.onCommit})
					if !errors.Is(err, ErrInvalidSwap) {
						errs <- fmt.Errorf("stale swap: %v", err)
					}
				}
				if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key, OnCommit: log.onCommit}); err != nil {
					errs <- err
					return
				}
				commits.Store(rk, true)
				if i%5 == 3 {
					commits.Store(fmt.Sprintf("w%d-%03d", w, i-2), false)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	log.checkChain(t, start, pubKey(t, key))
	evs, err := r.PendingEvents(ctx, start.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(log.res) {
		t.Fatalf("outbox %d events, OnCommit %d", len(evs), len(log.res))
	}
	for i := range evs {
		if evs[i].Rev != log.res[i].Rev || cid.Cid(evs[i].Commit) != log.res[i].Commit {
			t.Fatalf("outbox event %d differs from OnCommit", i)
		}
	}
	live := 0
	commits.Range(func(k, v any) bool {
		_, _, err := r.GetRecord(ctx, postNSID.String(), k.(string))
		if (err == nil) != v.(bool) {
			t.Errorf("record %s: %v", k, err)
		}
		if v.(bool) {
			live++
		}
		return true
	})
	if n := must(r.RecordCount(ctx)); n != int64(live) {
		t.Fatalf("%d records, want %d", n, live)
	}
	assertExactBlocks(t, r)
	t.Logf("%d commits in %d transactions", len(log.res), r.commitTxs-txsBefore)
}
