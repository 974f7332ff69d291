package takeover

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"

	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/takeover/refpds"
)

func runTakeover(t *testing.T, f *refFixture, to string, mod func(*Options)) (*Report, error) {
	t.Helper()
	opts := Options{From: f.root, EnvFile: f.envFile, To: to}
	if mod != nil {
		mod(&opts)
	}
	return Run(context.Background(), opts)
}

func TestTakeover(t *testing.T) {
	ctx := context.Background()
	f := buildRefFixture(t)
	alice, bob, carol := f.accounts[0], f.accounts[1], f.accounts[2]
	before := treeHash(t, f.root)
	to := filepath.Join(t.TempDir(), "data")

	// --check: the report, and nothing written.
	var phases []string
	rep, err := runTakeover(t, f, to, func(o *Options) {
		o.Check = true
		o.Progress = func(p Progress) { phases = append(phases, p.Phase) }
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatalf("--check created %s", to)
	}
	if rep.Done || rep.Accounts != 3 || rep.Deactivated != 1 || rep.TakenDown != 1 || rep.AppPasswords != 3 || rep.Sessions != 1 ||
		rep.InviteCodes != 1 || rep.InviteUses != 1 || rep.Preferences != 2 || rep.RecordTakedowns != 1 || rep.BlobTakedowns != 1 ||
		rep.Blobs != 2 || rep.SeqHead != f.seqHead {
		t.Fatalf("check report: %+v", rep)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"1 uploaded blobs no record uses yet", "1 pending email tokens", "1 invalidated firehose events",
		"PDS_DPOP_SECRET", "would carry"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("check report lacks %q:\n%s", want, text.String())
		}
	}
	if len(phases) == 0 || phases[0] != "checking" {
		t.Errorf("progress phases %v", phases)
	}

	rep, err = runTakeover(t, f, to, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Done || rep.Events != int64(len(f.windowSeqs)) {
		t.Fatalf("report: done %v, events %d, want %d", rep.Done, rep.Events, len(f.windowSeqs))
	}
	if after := treeHash(t, f.root); after != before {
		t.Fatal("the reference's directory changed")
	}
	if entries, _ := os.ReadDir(filepath.Dir(to)); len(entries) != 1 {
		t.Fatalf("leftovers beside the destination: %v", entries)
	}

	// Settings and secrets load in this server as the reference had them.
	env, err := refpds.ReadEnv(filepath.Join(to, "pds.env"))
	if err != nil {
		t.Fatal(err)
	}
	if env["PDS_BLOBSTORE_DISK_LOCATION"] != "" || env["PDS_DPOP_SECRET"] != "" || env["PDS_JWT_SECRET"] != "" {
		t.Errorf("pds.env carries what it should not: %v", env)
	}
	cfg, err := pds.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDirectory != to || cfg.Hostname != "localhost" || !cfg.InviteRequired || len(cfg.Crawlers) != 1 || cfg.Crawlers[0] != "https://bsky.network" ||
		string(cfg.JWTSecret) != fixtureJWTSecret || cfg.AdminPassword != "fixture admin" || len(cfg.GeneratedSecrets) != 0 {
		t.Fatalf("config from the new directory: %+v", cfg)
	}
	if got := strings.TrimLeft(hexOf(cfg.RotationKey.Bytes()), "0"); got != strings.TrimLeft(fixtureRotationKey, "0") {
		t.Errorf("rotation key %s", got)
	}

	// Accounts.
	st, err := accountstore.Open(ctx, filepath.Join(to, "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, a := range f.accounts {
		acct, err := st.AccountByHandle(ctx, a.handle)
		if err != nil {
			t.Fatalf("%s: %v", a.handle, err)
		}
		if acct.DID != a.did || acct.Email != a.email || !accounts.VerifyPassword(a.password, acct.PasswordHash) || accounts.VerifyPassword("wrong", acct.PasswordHash) {
			t.Errorf("%s: %+v", a.handle, acct)
		}
		if (acct.EmailConfirmedAt != nil) != a.emailConfirmed || (acct.DeactivatedAt != nil) != a.deactivated || (acct.TakedownRef != "") != a.takendown {
			t.Errorf("%s: state %+v", a.handle, acct)
		}
		if !bytes.Equal(acct.SigningKey, a.key.Bytes()) {
			t.Errorf("%s: signing key changed", a.handle)
		}
		h, _ := auth.HashAppPassword(a.did, a.appPassword)
		ap, err := st.AppPasswordByHash(ctx, a.did, h)
		if err != nil || ap.Name != "phone" || ap.Privileged != (a == alice) {
			t.Errorf("%s: app password %+v %v", a.handle, ap, err)
		}
	}
	if acct, _ := st.AccountByDID(ctx, carol.did); acct.TakedownRef != "mod-ticket-1" || !acct.InvitesDisabled {
		t.Errorf("carol: %+v", acct)
	}
	if tok, err := st.RefreshTokenByID(ctx, f.refreshID); err != nil || tok.DID != alice.did || tok.AppPasswordName != "phone" {
		t.Errorf("session: %+v %v", tok, err)
	}
	if _, err := st.RefreshTokenByID(ctx, "expired-token"); !errors.Is(err, accountstore.ErrNotFound) {
		t.Errorf("an expired session was carried: %v", err)
	}
	if code, err := st.InviteCodeByCode(ctx, f.inviteCode); err != nil || code.Available != 2 || len(code.Uses) != 1 || code.Uses[0].UsedBy != bob.did.String() {
		t.Errorf("invite: %+v %v", code, err)
	}
	if prefs, err := st.AllPreferences(ctx, alice.did); err != nil || len(prefs) != 2 || prefs[0].Name != "app.bsky.actor.defs#adultContentPref" {
		t.Errorf("preferences: %+v %v", prefs, err)
	}
	if tds, err := st.RecordTakedowns(ctx); err != nil || len(tds) != 1 || tds[0].URI != "at://"+carol.did.String()+"/"+carol.takenDownRecord || tds[0].Ref != "record-ticket" {
		t.Errorf("record takedowns: %+v %v", tds, err)
	}
	carolBlob := blobstore.CIDOf(carol.takenDownBlob)
	if ref, err := st.BlobTakedown(ctx, carol.did, carolBlob.String()); err != nil || ref != "blob-ticket" {
		t.Errorf("blob takedown: %q %v", ref, err)
	}

	// Repositories: same heads, records and revs; blobs linked; the next commit chains to the old head.
	repos, err := repo.OpenStore(filepath.Join(to, "actors"), repo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer repos.Close()
	for _, a := range f.accounts {
		r, err := repos.Repo(ctx, a.did)
		if err != nil {
			t.Fatal(err)
		}
		head, _ := r.Head(ctx)
		if head != a.head {
			t.Errorf("%s: head %+v, want %+v", a.handle, head, a.head)
		}
		if n, _ := r.RecordCount(ctx); n != int64(len(a.records)) {
			t.Errorf("%s: %d records, want %d", a.handle, n, len(a.records))
		}
		for path, want := range a.records {
			coll, rkey, _ := strings.Cut(path, "/")
			if c, _, err := r.GetRecord(ctx, coll, rkey); err != nil || c != want {
				t.Errorf("%s %s: %v %v", a.handle, path, c, err)
			}
		}
		// Records keep the revs that wrote them: what came after the first posts is what a reader has not seen.
		since, err := r.RecordsSince(ctx, a.postsRev, 100)
		if err != nil || len(since) != len(a.records)-2 {
			t.Errorf("%s: %d records since the first posts, want %d (%v)", a.handle, len(since), len(a.records)-2, err)
		}
		if missing, _, _ := r.ListMissingBlobs(ctx, "", 10); len(missing) != 0 {
			t.Errorf("%s: missing blobs %v", a.handle, missing)
		}
		for _, data := range [][]byte{a.blob, a.takenDownBlob} {
			if data == nil {
				continue
			}
			c := blobstore.CIDOf(data)
			b, err := r.GetBlob(ctx, c)
			if err != nil || b.Size != int64(len(data)) || b.MimeType != "image/png" || b.Temp || !b.Referenced() {
				t.Errorf("%s: blob %+v %v", a.handle, b, err)
			}
		}
		if a.temp != nil {
			if _, err := r.GetBlob(ctx, blobstore.CIDOf(a.temp)); err == nil {
				t.Errorf("%s: a temporary upload was carried", a.handle)
			}
		}
		if a == alice {
			key, _ := atcrypto.ParsePrivateBytesK256(func() []byte { acct, _ := st.AccountByDID(ctx, a.did); return acct.SigningKey }())
			res, err := r.Apply(ctx, repo.WriteRequest{Signer: key, Ops: []repo.WriteOp{{Action: repo.ActionCreate, Collection: "app.bsky.feed.post",
				RKey: "3kzzzzzzzzz22", Record: cborMap(t, map[string]any{"$type": "app.bsky.feed.post", "text": "after", "createdAt": "2026-12-01T00:00:00.000Z"})}}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Since == nil || *res.Since != a.head.Rev || res.PrevData == nil || *res.PrevData != a.head.Data || res.Rev <= a.head.Rev {
				t.Errorf("the new commit does not chain to the old head: %+v", res)
			}
			var car bytes.Buffer
			if err := r.WriteCAR(ctx, &car, ""); err != nil {
				t.Fatal(err)
			}
			pub, _ := a.key.PublicKey()
			commit, _, err := atrepo.LoadRepoFromCAR(ctx, &car)
			if err != nil {
				t.Fatal(err)
			}
			if err := commit.VerifySignature(pub); err != nil || commit.DID != a.did.String() {
				t.Errorf("new head does not verify with the account's key: %v", err)
			}
		}
		r.Release()
	}

	// Blob bytes: copied; carol's taken-down blob is in the quarantine.
	disk, err := blobstore.NewDisk(filepath.Join(to, "blobs"), "")
	if err != nil {
		t.Fatal(err)
	}
	readBlob := func(o blobstore.Object, err error) []byte {
		if err != nil {
			return nil
		}
		defer o.Close()
		b, _ := io.ReadAll(o)
		return b
	}
	if got := readBlob(disk.Open(ctx, alice.did, blobstore.CIDOf(alice.blob))); !bytes.Equal(got, alice.blob) {
		t.Error("alice's avatar bytes")
	}
	if _, err := disk.Open(ctx, carol.did, carolBlob); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("carol's taken-down blob is readable: %v", err)
	}
	if got := readBlob(disk.OpenQuarantined(ctx, carol.did, carolBlob)); !bytes.Equal(got, carol.takenDownBlob) {
		t.Error("carol's quarantined blob bytes")
	}

	// The firehose: the head is the reference's last seq, the window's events at their seq, nothing else.
	seq, err := sequencer.Open(ctx, filepath.Join(to, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if seq.Head() != f.seqHead {
		t.Errorf("head %d, want %d", seq.Head(), f.seqHead)
	}
	evts, err := seq.Events(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evts) != len(f.windowSeqs) {
		t.Fatalf("%d events, want %d", len(evts), len(f.windowSeqs))
	}
	for i, e := range evts {
		if e.Seq != f.windowSeqs[i] {
			t.Fatalf("event %d: seq %d, want %d", i, e.Seq, f.windowSeqs[i])
		}
	}
	r := bytes.NewReader(evts[1].Frame)
	if _, typ, err := sequencer.ReadHeader(r); err != nil || typ != sequencer.TypeCommit {
		t.Fatalf("second event %q %v", typ, err)
	}
	var c comatproto.SyncSubscribeRepos_Commit
	if err := c.UnmarshalCBOR(r); err != nil || c.Seq != evts[1].Seq || c.Repo != alice.did.String() || c.Time == "" || c.Since != nil {
		t.Errorf("genesis commit event %+v %v", c, err)
	}
	if last, _ := seq.LastRev(ctx, carol.did); last != carol.head.Rev {
		t.Errorf("carol's last sequenced rev %q, want %q", last, carol.head.Rev)
	}
	if d, _ := seq.Dirty(ctx); len(d) != 0 {
		t.Errorf("accounts left dirty: %v", d)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

func TestTakeoverMove(t *testing.T) {
	f := buildRefFixture(t)
	alice := f.accounts[0]
	src := filepath.Join(f.root, "blocks", alice.did.String(), blobstore.CIDOf(alice.blob).String())
	to := filepath.Join(filepath.Dir(f.root), "data")
	if _, err := runTakeover(t, f, to, func(o *Options) { o.Move = true }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("--move left %s", src)
	}
	disk, _ := blobstore.NewDisk(filepath.Join(to, "blobs"), "")
	o, err := disk.Open(context.Background(), alice.did, blobstore.CIDOf(alice.blob))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o)
	o.Close()
	if !bytes.Equal(got, alice.blob) {
		t.Error("moved blob bytes")
	}
}

// TestTakeoverMoveUndo: a run with --move that fails after moving blobs puts them back.
func TestTakeoverMoveUndo(t *testing.T) {
	f := buildRefFixture(t)
	// The accounts are taken over in DID order: the last one's repository is damaged (which only the run's walk
	// of the tree finds), so the blobs of the accounts before it are moved by then.
	last := f.accounts[0]
	for _, a := range f.accounts {
		if a.did > last.did {
			last = a
		}
	}
	execRef(t, f, filepath.Join("actors", shard(last.did), last.did.String(), "store.sqlite"),
		"DELETE FROM repo_block WHERE cid = '"+last.head.Data.String()+"'")
	before := treeHash(t, f.root)
	to := filepath.Join(filepath.Dir(f.root), "data")
	var moved bool
	_, err := runTakeover(t, f, to, func(o *Options) {
		o.Move = true
		o.Progress = func(p Progress) {
			if p.Phase == "accounts" && p.Done == int64(len(f.accounts)-1) {
				// Before the last account: the others' blob files have left the reference's directory.
				moved = treeHash(t, f.root) != before
			}
		}
	})
	if !errors.Is(err, repo.ErrAdoptInvalid) {
		t.Fatalf("err %v", err)
	}
	if !moved {
		t.Fatal("no blob was moved before the failure: the test proves nothing")
	}
	if treeHash(t, f.root) != before {
		t.Fatal("the moved blobs were not put back")
	}
	if entries, _ := os.ReadDir(filepath.Dir(to)); len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
}

func TestTakeoverErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, f *refFixture)
		want   error
		msg    string
	}{
		{"older schema", func(t *testing.T, f *refFixture) {
			execRef(t, f, "account.sqlite", "DELETE FROM kysely_migration WHERE name = '007'")
		}, refpds.ErrSchema, "older reference"},
		{"newer schema", func(t *testing.T, f *refFixture) {
			execRef(t, f, "sequencer.sqlite", "INSERT INTO kysely_migration VALUES ('002', '2027-01-01T00:00:00.000Z')")
		}, refpds.ErrSchema, "newer reference"},
		{"newer actor store", func(t *testing.T, f *refFixture) {
			a := f.accounts[1]
			execRef(t, f, filepath.Join("actors", shard(a.did), a.did.String(), "store.sqlite"), "INSERT INTO kysely_migration VALUES ('002', '2027-01-01T00:00:00.000Z')")
		}, refpds.ErrSchema, "store.sqlite"},
		{"missing key", func(t *testing.T, f *refFixture) {
			a := f.accounts[1]
			os.Remove(filepath.Join(f.root, "actors", shard(a.did), a.did.String(), "key"))
		}, refpds.ErrMissing, "signing key"},
		{"missing repository", func(t *testing.T, f *refFixture) {
			a := f.accounts[2]
			os.RemoveAll(filepath.Join(f.root, "actors", shard(a.did), a.did.String()))
		}, refpds.ErrMissing, "store.sqlite"},
		{"missing sequencer", func(t *testing.T, f *refFixture) { os.Remove(filepath.Join(f.root, "sequencer.sqlite")) }, refpds.ErrMissing, "sequencer.sqlite"},
		{"missing env", func(t *testing.T, f *refFixture) { os.Remove(f.envFile) }, refpds.ErrMissing, "pds.env"},
		{"missing blob file", func(t *testing.T, f *refFixture) {
			a := f.accounts[0]
			os.Remove(filepath.Join(f.root, "blocks", a.did.String(), blobstore.CIDOf(a.blob).String()))
		}, nil, "blob files are missing"},
		{"wrong key", func(t *testing.T, f *refFixture) {
			a := f.accounts[0]
			k, _ := atcrypto.GeneratePrivateKeyK256()
			os.WriteFile(filepath.Join(f.root, "actors", shard(a.did), a.did.String(), "key"), k.Bytes(), 0o600)
		}, nil, "key does not sign"},
		{"corrupt record", func(t *testing.T, f *refFixture) {
			a := f.accounts[0]
			c := a.records["app.bsky.feed.post/3kaaaaaaaaa22"]
			execRef(t, f, filepath.Join("actors", shard(a.did), a.did.String(), "store.sqlite"), "UPDATE repo_block SET content = x'a0' WHERE cid = '"+c.String()+"'")
		}, repo.ErrAdoptInvalid, "do not match its CID"},
		{"missing MST node", func(t *testing.T, f *refFixture) {
			a := f.accounts[0]
			execRef(t, f, filepath.Join("actors", shard(a.did), a.did.String(), "store.sqlite"), "DELETE FROM repo_block WHERE cid = '"+a.head.Data.String()+"'")
		}, repo.ErrAdoptInvalid, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := buildRefFixture(t)
			tc.break_(t, f)
			before := treeHash(t, f.root)
			parent := t.TempDir()
			to := filepath.Join(parent, "data")
			for _, check := range []bool{true, false} {
				_, err := runTakeover(t, f, to, func(o *Options) { o.Check = check })
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
					if check && errors.Is(tc.want, repo.ErrAdoptInvalid) && err == nil {
						continue // --check does not walk the trees; the run does
					}
					t.Fatalf("check=%v: err %v, want %v containing %q", check, err, tc.want, tc.msg)
				}
				if entries, _ := os.ReadDir(parent); len(entries) != 0 {
					t.Fatalf("check=%v: wrote %v", check, entries)
				}
			}
			if treeHash(t, f.root) != before {
				t.Fatal("the reference's directory changed")
			}
		})
	}
}

func TestTakeoverTargetNotEmpty(t *testing.T) {
	f := buildRefFixture(t)
	to := t.TempDir()
	os.WriteFile(filepath.Join(to, "x"), []byte("x"), 0o600)
	if _, err := runTakeover(t, f, to, nil); !errors.Is(err, ErrTarget) {
		t.Fatalf("err %v", err)
	}
	if _, err := runTakeover(t, f, filepath.Join(f.root, "data"), nil); err == nil || !strings.Contains(err.Error(), "inside the reference") {
		t.Fatalf("err %v", err)
	}
}

func execRef(t *testing.T, f *refFixture, file, q string) {
	t.Helper()
	db := openExisting(t, filepath.Join(f.root, file))
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
}

func openExisting(t *testing.T, path string) *sql.DB {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}
