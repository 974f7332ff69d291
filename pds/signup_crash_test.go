package pds_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/sequencer"
	pdsrepo "github.com/pdsgo/pds/repo"
)

// crashedSignup leaves a data directory as a signup that died after creating its repo (account marked
// dirty, genesis commit in the outbox, nothing sequenced), with or without its account row.
func crashedSignup(t *testing.T, dataDir, did string, withAccount bool) {
	t.Helper()
	ctx := context.Background()
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	seq, err := sequencer.Open(ctx, filepath.Join(dataDir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := seq.MarkDirty(ctx, syntax.DID(did)); err != nil {
		t.Fatal(err)
	}
	seq.Close()
	store, err := pdsrepo.OpenStore(filepath.Join(dataDir, "actors"), pdsrepo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, syntax.DID(did), key); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if !withAccount {
		return
	}
	accounts, err := accountstore.Open(ctx, filepath.Join(dataDir, "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer accounts.Close()
	err = accounts.CreateAccount(ctx, &accountstore.Account{
		DID: syntax.DID(did), Handle: "halfway.test", Email: "halfway@example.com", PasswordHash: "x:y",
		SigningKey: key.Bytes(), CreatedAt: time.Now(),
	}, "")
	if err != nil {
		t.Fatal(err)
	}
}

// TestSignupCrashRecovery: a signup that died before its account row existed leaves nothing behind after a
// restart; one that died after it, but before its events were sequenced, gets the signup's events (identity,
// account, commit, sync) at the next start, once.
func TestSignupCrashRecovery(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	before := p.CreateAccount("before")
	plcURL := p.PLCURL
	p.Stop()
	headBefore := int64(4) // before's identity, account, commit, sync

	const orphan = "did:plc:orphanorphanorphanorphan"
	const halfway = "did:plc:halfwayhalfwayhalfwayhalf"
	crashedSignup(t, dataDir, orphan, false)
	crashedSignup(t, dataDir, halfway, true)

	for range 2 { // recovery must not repeat itself
		p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
		p.Stop()
	}
	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	entries, err := os.ReadDir(filepath.Join(dataDir, "actors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dataDir, "actors", e.Name(), orphan)); err == nil {
			t.Fatalf("the orphan signup's repo is still on disk")
		}
	}
	testpds.WaitHead(t, p, headBefore+4)
	frames := testpds.SubscribeAt(t, p, 0).Take(int(headBefore + 4))
	var types []string
	for _, f := range frames {
		switch f.DID() {
		case orphan:
			t.Fatalf("event for the orphan signup: %s", f.Type)
		case halfway:
			types = append(types, f.Type)
		case before.DID:
		default:
			t.Fatalf("event for unknown account %q", f.DID())
		}
	}
	want := []string{"#identity", "#account", "#commit", "#sync"}
	if len(types) != len(want) {
		t.Fatalf("halfway signup events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("halfway signup events %v, want %v", types, want)
		}
	}
	if f := frames[len(frames)-3]; f.Account == nil || !f.Account.Active {
		t.Fatalf("recovered #account is not active: %+v", f.Account)
	}
}

// TestLostSequencerFile: when sequencer.sqlite is lost, seq continues above everything handed out before and
// every active account's current head is announced with #sync.
func TestLostSequencerFile(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	var heads = map[string]string{}
	for _, name := range []string{"lost1", "lost2"} {
		acct := p.CreateAccount(name)
		w := testpds.NewWriter(t, p, acct)
		_, c := w.Create(testpds.NoteCollection, "a", testpds.Note(name))
		heads[acct.DID] = c.Rev
	}
	oldHead := p.Server.FirehoseHead()
	plcURL := p.PLCURL
	p.Stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dataDir, "sequencer.sqlite"+suffix))
	}
	p = testpds.Start(t, testpds.Options{DataDir: dataDir, PLCURL: plcURL})
	if p.Server.FirehoseHead() <= oldHead {
		t.Fatalf("seq went backwards: head %d after rebuild, %d before", p.Server.FirehoseHead(), oldHead)
	}
	// A consumer at the old head is told it missed events (#info OutdatedCursor), then gets the #syncs.
	frames := testpds.SubscribeAt(t, p, oldHead).Take(len(heads) + 1)
	if frames[0].Info == nil || frames[0].Info.Name != "OutdatedCursor" {
		t.Fatalf("first frame after rebuild is %s, want #info OutdatedCursor", frames[0].Type)
	}
	for i, f := range frames[1:] {
		if f.Sync == nil {
			t.Fatalf("frame %d after rebuild is %s, want #sync", i, f.Type)
		}
		if f.Seq <= oldHead {
			t.Fatalf("seq %d not above the old head %d", f.Seq, oldHead)
		}
		if heads[f.Sync.Did] != f.Sync.Rev {
			t.Fatalf("#sync for %s at rev %s, head is %s", f.Sync.Did, f.Sync.Rev, heads[f.Sync.Did])
		}
		delete(heads, f.Sync.Did)
	}
	if len(heads) != 0 {
		t.Fatalf("no #sync for %v", heads)
	}
}

// TestCleanStopClearsRecoveryMarks: after a clean stop no account is left marked for start-up recovery, so
// the next start does no per-account work.
func TestCleanStopClearsRecoveryMarks(t *testing.T) {
	dataDir := t.TempDir()
	p := testpds.Start(t, testpds.Options{DataDir: dataDir})
	for _, name := range []string{"clean1", "clean2"} {
		acct := p.CreateAccount(name)
		w := testpds.NewWriter(t, p, acct)
		w.Create(testpds.NoteCollection, "a", testpds.Note(name))
	}
	p.Stop()
	seq, err := sequencer.Open(context.Background(), filepath.Join(dataDir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	dirty, err := seq.Dirty(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dirty) != 0 {
		t.Fatalf("accounts still marked after a clean stop: %v", dirty)
	}
}
