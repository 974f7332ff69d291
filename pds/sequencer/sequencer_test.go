package sequencer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func open(t *testing.T, path string, opts Options) *Sequencer {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wait(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not stored within 10 s")
	}
}

func identity(s *Sequencer, did syntax.DID) <-chan error { return s.EnqueueIdentity(did, "") }

func testCID(t *testing.T, data string) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}.Sum([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func commitEvent(t *testing.T, did, rev string) *comatproto.SyncSubscribeRepos_Commit {
	return &comatproto.SyncSubscribeRepos_Commit{
		Repo: did, Rev: rev, Commit: lexutil.LexLink(testCID(t, did+rev)),
		Ops: []*comatproto.SyncSubscribeRepos_RepoOp{},
	}
}

// decode splits a stored frame into its header type and its body's seq.
func decode(t *testing.T, frame []byte) (string, int64) {
	t.Helper()
	r := bytes.NewReader(frame)
	op, typ, err := ReadHeader(r)
	if err != nil || op != 1 {
		t.Fatalf("header: op %d, %v", op, err)
	}
	var seq int64
	switch typ {
	case TypeCommit:
		var e comatproto.SyncSubscribeRepos_Commit
		err = e.UnmarshalCBOR(r)
		seq = e.Seq
	case TypeIdentity:
		var e comatproto.SyncSubscribeRepos_Identity
		err = e.UnmarshalCBOR(r)
		seq = e.Seq
	case TypeAccount:
		var e comatproto.SyncSubscribeRepos_Account
		err = e.UnmarshalCBOR(r)
		seq = e.Seq
	case TypeSync:
		var e comatproto.SyncSubscribeRepos_Sync
		err = e.UnmarshalCBOR(r)
		seq = e.Seq
	default:
		t.Fatalf("unexpected frame type %q", typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d trailing bytes after the frame body", r.Len())
	}
	return typ, seq
}

func allEvents(t *testing.T, s *Sequencer) []*Event {
	t.Helper()
	var out []*Event
	var after int64
	for {
		evs, err := s.Events(context.Background(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after = evs[len(evs)-1].Seq
	}
}

func TestSeqGapFreeAndOrderedPerAccount(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "seq.sqlite"), Options{})
	const accounts, perAccount = 8, 60
	var wg sync.WaitGroup
	for a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			did := fmt.Sprintf("did:plc:acct%d", a)
			var last <-chan error
			for i := range perAccount {
				// The write path enqueues under the account's lock: one goroutine per account.
				last = s.EnqueueCommit(commitEvent(t, did, fmt.Sprintf("rev%04d", i)))
			}
			wait(t, last)
		}()
	}
	wg.Wait()
	evs := allEvents(t, s)
	if len(evs) != accounts*perAccount || s.Head() != int64(accounts*perAccount) {
		t.Fatalf("%d events, head %d; want %d", len(evs), s.Head(), accounts*perAccount)
	}
	lastRev := map[string]string{}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		typ, seq := decode(t, e.Frame)
		if typ != TypeCommit || seq != e.Seq {
			t.Fatalf("frame says %s seq %d, row says seq %d", typ, seq, e.Seq)
		}
		var c comatproto.SyncSubscribeRepos_Commit
		r := bytes.NewReader(e.Frame)
		ReadHeader(r)
		if err := c.UnmarshalCBOR(r); err != nil {
			t.Fatal(err)
		}
		if c.Rev <= lastRev[c.Repo] {
			t.Fatalf("%s: rev %s after %s", c.Repo, c.Rev, lastRev[c.Repo])
		}
		lastRev[c.Repo] = c.Rev
		if c.Time == "" {
			t.Fatalf("commit without time: %+v", c)
		}
	}
	for a := range accounts {
		did := syntax.DID(fmt.Sprintf("did:plc:acct%d", a))
		rev, err := s.LastRev(context.Background(), did)
		if err != nil || rev != fmt.Sprintf("rev%04d", perAccount-1) || s.SequencedRev(did) != rev {
			t.Fatalf("%s: last rev %q (%v), sequenced rev %q", did, rev, err, s.SequencedRev(did))
		}
	}
}

func TestSeqNeverRestartsAfterPruneAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.sqlite")
	s := open(t, path, Options{})
	for range 10 {
		identity(s, "did:plc:a")
	}
	wait(t, identity(s, "did:plc:a"))
	n, err := s.Prune(context.Background(), time.Now().Add(time.Hour))
	if err != nil || n != 11 {
		t.Fatalf("pruned %d (%v), want 11", n, err)
	}
	if oldest, _ := s.Oldest(context.Background()); oldest != 0 || s.Head() != 11 {
		t.Fatalf("after pruning everything: oldest %d, head %d", oldest, s.Head())
	}
	wait(t, identity(s, "did:plc:a"))
	if evs := allEvents(t, s); len(evs) != 1 || evs[0].Seq != 12 {
		t.Fatalf("after prune: %v", evs)
	}
	// Prune everything again, then reopen: the head comes from the meta table, not from the events.
	s.Prune(context.Background(), time.Now().Add(time.Hour))
	s.Close()
	s = open(t, path, Options{Floor: 5}) // a floor below an existing file's head changes nothing
	if s.Head() != 12 {
		t.Fatalf("reopened head %d, want 12", s.Head())
	}
	wait(t, identity(s, "did:plc:a"))
	if evs := allEvents(t, s); len(evs) != 1 || evs[0].Seq != 13 {
		t.Fatalf("after reopen: %+v", evs)
	}
}

func TestSeqFloorForNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.sqlite")
	s := open(t, path, Options{Floor: 5000})
	if s.Head() != 5000 {
		t.Fatalf("head %d, want the floor 5000", s.Head())
	}
	// The floor is durable even before any event.
	s.Close()
	s = open(t, path, Options{})
	if s.Head() != 5000 {
		t.Fatalf("reopened head %d, want 5000", s.Head())
	}
	wait(t, identity(s, "did:plc:a"))
	evs := allEvents(t, s)
	if len(evs) != 1 || evs[0].Seq != 5001 {
		t.Fatalf("first event after the floor: %+v", evs)
	}
	if _, seq := decode(t, evs[0].Frame); seq != 5001 {
		t.Fatalf("frame seq %d", seq)
	}
}

// TestSeqFloorRaisesExistingLog: a restored log (pds/backup) continues above the floor the server passes.
func TestSeqFloorRaisesExistingLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.sqlite")
	s := open(t, path, Options{})
	wait(t, identity(s, "did:plc:a"))
	s.Close()
	s = open(t, path, Options{Floor: 1_000_000})
	if s.Head() != 1_000_000 {
		t.Fatalf("head %d, want the floor", s.Head())
	}
	wait(t, identity(s, "did:plc:a"))
	s.Close()
	s = open(t, path, Options{})
	evs := allEvents(t, s)
	if len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 1_000_001 {
		t.Fatalf("events: %+v", evs)
	}
}

// TestSubscribeHeadIsExact subscribes at random moments while events are being stored: each subscription
// must get exactly the events above the head Subscribe returned, consecutively.
func TestSubscribeHeadIsExact(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "seq.sqlite"), Options{})
	const total = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last <-chan error
		for range total {
			last = identity(s, "did:plc:w")
		}
		<-last
	}()
	type got struct {
		head int64
		sub  *Subscription
	}
	var subs []got
	for range 20 {
		sub, head := s.Subscribe(total)
		subs = append(subs, got{head, sub})
		time.Sleep(time.Millisecond)
	}
	<-done
	for _, g := range subs {
		r := &subReader{sub: g.sub}
		next := g.head + 1
		for next <= total {
			e := r.next(5 * time.Second)
			if e == nil {
				t.Fatalf("subscribed at head %d: stuck before %d", g.head, next)
			}
			if e.Seq != next {
				t.Fatalf("subscribed at head %d: got seq %d, want %d", g.head, e.Seq, next)
			}
			next++
		}
		if e := r.next(0); e != nil {
			t.Fatalf("extra event %d", e.Seq)
		}
		g.sub.Unsubscribe()
	}
	if s.Subscribers() != 0 {
		t.Fatalf("%d subscribers left after Unsubscribe", s.Subscribers())
	}
}

func TestSlowSubscriberIsDroppedAlone(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "seq.sqlite"), Options{})
	slow, _ := s.Subscribe(3)
	healthy, _ := s.Subscribe(100)
	// Two waves: the slow subscriber takes nothing, so the second finds the first still queued (a subscriber
	// that has taken everything accepts any one batch).
	for range 2 {
		var last <-chan error
		for range 10 {
			last = identity(s, "did:plc:a")
		}
		wait(t, last)
	}
	select {
	case <-slow.Done():
		if !errors.Is(slow.Err(), ErrTooSlow) {
			t.Fatalf("slow subscriber ended with %v", slow.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow subscriber not dropped")
	}
	r := &subReader{sub: healthy}
	for i := int64(1); i <= 20; i++ {
		if e := r.next(5 * time.Second); e == nil || e.Seq != i {
			t.Fatalf("healthy got %v, want seq %d", e, i)
		}
	}
	select {
	case <-healthy.Done():
		t.Fatalf("healthy subscriber ended: %v", healthy.Err())
	default:
	}
	if s.Subscribers() != 1 {
		t.Fatalf("%d subscribers, want 1", s.Subscribers())
	}
}

func TestCloseStoresEverythingAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.sqlite")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := s.Subscribe(10)
	var chans []<-chan error
	for range 500 {
		chans = append(chans, identity(s, "did:plc:a"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		if err := <-ch; err != nil {
			t.Fatalf("accepted event failed: %v", err)
		}
	}
	// After Close: no hang, an error.
	select {
	case err := <-identity(s, "did:plc:a"):
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("enqueue after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("enqueue after close hangs")
	}
	<-sub.Done()
	if !errors.Is(sub.Err(), ErrClosed) && !errors.Is(sub.Err(), ErrTooSlow) {
		t.Fatalf("subscription ended with %v", sub.Err())
	}
	late, _ := s.Subscribe(1)
	select {
	case <-late.Done():
	case <-time.After(time.Second):
		t.Fatal("subscription after close is not closed")
	}
	s = open(t, path, Options{})
	if s.Head() != 500 || len(allEvents(t, s)) != 500 {
		t.Fatalf("after reopen: head %d", s.Head())
	}
}

func TestDirtyAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.sqlite")
	s := open(t, path, Options{})
	ctx := context.Background()
	for _, did := range []syntax.DID{"did:plc:b", "did:plc:a"} {
		if err := s.MarkDirty(ctx, did); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, s.EnqueueCommit(commitEvent(t, "did:plc:a", "3aaa")))
	s.Close()
	s = open(t, path, Options{})
	dirty, err := s.Dirty(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirty) != 2 || dirty[0] != (DirtyAccount{"did:plc:a", "3aaa"}) || dirty[1] != (DirtyAccount{"did:plc:b", ""}) {
		t.Fatalf("dirty: %+v", dirty)
	}
	if err := s.ClearDirty(ctx, "did:plc:a"); err != nil {
		t.Fatal(err)
	}
	if dirty, _ = s.Dirty(ctx); len(dirty) != 1 || dirty[0].DID != "did:plc:b" {
		t.Fatalf("after clear: %+v", dirty)
	}
	// Clearing keeps the last sequenced rev.
	if rev, _ := s.LastRev(ctx, "did:plc:a"); rev != "3aaa" {
		t.Fatalf("last rev after clear: %q", rev)
	}
}

func TestPruneInBatchesAndEarliestSince(t *testing.T) {
	old := pruneBatch
	pruneBatch = 7
	defer func() { pruneBatch = old }()
	s := open(t, filepath.Join(t.TempDir(), "seq.sqlite"), Options{})
	var last <-chan error
	for range 30 {
		last = identity(s, "did:plc:a")
	}
	wait(t, last)
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	for range 5 {
		last = identity(s, "did:plc:a")
	}
	wait(t, last)
	ctx := context.Background()
	if first, err := s.EarliestSince(ctx, cut); err != nil || first != 31 {
		t.Fatalf("earliest since the cut: %d (%v), want 31", first, err)
	}
	if n, err := s.Prune(ctx, cut); err != nil || n != 30 {
		t.Fatalf("pruned %d (%v), want 30", n, err)
	}
	if oldest, _ := s.Oldest(ctx); oldest != 31 {
		t.Fatalf("oldest %d, want 31", oldest)
	}
	if first, _ := s.EarliestSince(ctx, time.Now().Add(time.Minute)); first != 0 {
		t.Fatalf("earliest since the future: %d", first)
	}
}
