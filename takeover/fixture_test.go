package takeover

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/takeover/refpds"
)

// A reference-format data directory built by the test: the reference's schemas (testdata/*.sql, dumped from
// a data directory of @atproto/pds 0.5.35) filled with what the reference would have written. Repositories are
// made by this server's repo package (real signed commits) and copied block by block into store.sqlite, with
// every block the account ever had (so unreachable blocks are there too, as in a reference store), each at the
// rev that first stored it.

type refAccount struct {
	did                       syntax.DID
	handle, email, password   string
	appPassword               string
	key                       *atcrypto.PrivateKeyK256
	deactivated, takendown    bool
	emailConfirmed            bool
	blob, takenDownBlob, temp []byte // an avatar (referenced), a blob under takedown (referenced), a temporary upload
	head                      repo.Head
	firstRev                  string             // genesis
	postsRev                  string             // the commit of the first two posts
	records                   map[string]cid.Cid // "collection/rkey" -> CID
	takenDownRecord           string             // "collection/rkey"
}

type refFixture struct {
	root, envFile string
	accounts      []*refAccount
	seqHead       int64
	windowSeqs    []int64 // the events the takeover must carry, in order
	refreshID     string
	inviteCode    string
}

const fixtureJWTSecret = "fixture-jwt-secret"

var fixtureRotationKey = strings.Repeat("c", 63) + "1"

func execSQLFile(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(b), ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v: %s", file, err, stmt)
		}
	}
}

func openRefDB(t *testing.T, path, schema string, migrations []string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	execSQLFile(t, db, schema)
	for _, m := range migrations {
		if _, err := db.Exec("INSERT INTO kysely_migration (name, timestamp) VALUES (?, ?)", m, "2026-01-01T00:00:00.000Z"); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func cborMap(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := atdata.MarshalCBOR(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRefAccount(t *testing.T, name string) *refAccount {
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey()
	sum := sha256.Sum256([]byte(name + pub.DIDKey()))
	return &refAccount{
		did:         syntax.DID("did:plc:" + strings.ToLower(hex.EncodeToString(sum[:12]))[:24]),
		handle:      name + ".test",
		email:       name + "@example.com",
		password:    "pw-" + name,
		appPassword: "abcd-efgh-ijkl-mn" + name[:2],
		key:         key,
		records:     map[string]cid.Cid{},
	}
}

// buildRefFixture writes a reference data directory with alice (active, posts, avatar, app password,
// preference, session), bob (deactivated, created with an invite) and carol (taken down, with a record and a
// blob under takedown), and a firehose log whose window holds their events.
func buildRefFixture(t *testing.T) *refFixture {
	t.Helper()
	ctx := context.Background()
	f := &refFixture{root: filepath.Join(t.TempDir(), "pds")}
	alice, bob, carol := newRefAccount(t, "alice"), newRefAccount(t, "bob"), newRefAccount(t, "carol")
	alice.emailConfirmed = true
	alice.blob = bytes.Repeat([]byte("alice-avatar "), 300)
	alice.temp = []byte("an upload no record uses")
	bob.deactivated = true
	carol.takendown = true
	carol.takenDownBlob = bytes.Repeat([]byte("carol-picture "), 100)
	f.accounts = []*refAccount{alice, bob, carol}

	env := fmt.Sprintf(`# the reference's env file
PDS_HOSTNAME=localhost
PDS_PORT=2583
PDS_DATA_DIRECTORY=/pds
PDS_BLOBSTORE_DISK_LOCATION=/pds/blocks
PDS_DID_PLC_URL=http://127.0.0.1:1
PDS_INVITE_REQUIRED=true
PDS_CRAWLERS="https://bsky.network"
PDS_JWT_SECRET=%s
PDS_ADMIN_PASSWORD='fixture admin'
PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX=%s
PDS_DPOP_SECRET=dddd
PDS_REPO_BACKFILL_LIMIT_MS=86400000
`, fixtureJWTSecret, fixtureRotationKey)
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	f.envFile = filepath.Join(f.root, "pds.env")
	if err := os.WriteFile(f.envFile, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	blobDir := filepath.Join(f.root, "blocks")

	accountDB := openRefDB(t, filepath.Join(f.root, "account.sqlite"), "account.sql", refpds.KnownMigrations["account.sqlite"])
	defer accountDB.Close()
	seqDB := openRefDB(t, filepath.Join(f.root, "sequencer.sqlite"), "sequencer.sql", refpds.KnownMigrations["sequencer.sqlite"])
	defer seqDB.Close()
	now := time.Now()
	seq := func(did syntax.DID, typ string, body []byte, at time.Time, invalidated bool) int64 {
		res, err := seqDB.Exec("INSERT INTO repo_seq (did, eventType, event, invalidated, sequencedAt) VALUES (?, ?, ?, ?, ?)",
			did, typ, body, invalidated, iso(at))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.LastInsertId()
		f.seqHead = n
		return n
	}
	// Before the window: not carried.
	seq("did:plc:oldoldoldoldoldoldoldold", "identity", cborMap(t, map[string]any{"did": "did:plc:oldoldoldoldoldoldoldold"}), now.Add(-72*time.Hour), false)

	scratch, err := repo.OpenStore(t.TempDir(), repo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	for i, a := range f.accounts {
		created := now.Add(-time.Duration(10-i) * time.Hour)
		pwHash, err := accounts.HashPassword(a.password)
		if err != nil {
			t.Fatal(err)
		}
		var confirmed, deactivated, takedown any
		if a.emailConfirmed {
			confirmed = iso(created)
		}
		if a.deactivated {
			deactivated = iso(now.Add(-time.Hour))
		}
		if a.takendown {
			takedown = "mod-ticket-1"
		}
		if _, err := accountDB.Exec("INSERT INTO actor (did, handle, createdAt, takedownRef, deactivatedAt) VALUES (?, ?, ?, ?, ?)",
			a.did, a.handle, iso(created), takedown, deactivated); err != nil {
			t.Fatal(err)
		}
		if _, err := accountDB.Exec("INSERT INTO account (did, email, passwordScrypt, emailConfirmedAt, invitesDisabled) VALUES (?, ?, ?, ?, ?)",
			a.did, a.email, pwHash, confirmed, a.takendown); err != nil {
			t.Fatal(err)
		}
		seq(a.did, "identity", cborMap(t, map[string]any{"did": a.did.String(), "handle": a.handle}), now.Add(-3*time.Hour), false)
		f.windowSeqs = append(f.windowSeqs, f.seqHead)

		// The repository: genesis, posts, a profile referencing the avatar, a deleted post (its blocks stay in
		// the reference's store, unreachable).
		dir := filepath.Join(f.root, "actors", shard(a.did), a.did.String())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key"), a.key.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		store := openRefDB(t, filepath.Join(dir, "store.sqlite"), "store.sql", refpds.KnownMigrations["store.sqlite"])
		blockRevs := map[cid.Cid]bool{}
		recRevs := map[string]string{}
		genesis, err := scratch.Create(ctx, a.did, a.key)
		if err != nil {
			t.Fatal(err)
		}
		a.firstRev = genesis.Rev
		r, err := scratch.Repo(ctx, a.did)
		if err != nil {
			t.Fatal(err)
		}
		copyBlocks := func(since string, rev string) {
			var buf bytes.Buffer
			if err := r.WriteCAR(ctx, &buf, since); err != nil {
				t.Fatal(err)
			}
			cr, err := car.NewCarReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			for {
				blk, err := cr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if blockRevs[blk.Cid()] {
					continue
				}
				blockRevs[blk.Cid()] = true
				if _, err := store.Exec("INSERT INTO repo_block (cid, repoRev, size, content) VALUES (?, ?, ?, ?)",
					blk.Cid().String(), rev, len(blk.RawData()), blk.RawData()); err != nil {
					t.Fatal(err)
				}
			}
		}
		commit := func(res *repo.CommitResult, since string) {
			copyBlocks(since, res.Rev)
			ops := []any{}
			for _, op := range res.Ops {
				m := map[string]any{"action": string(op.Action), "path": op.Collection + "/" + op.RKey, "cid": nil}
				if op.CID != nil {
					m["cid"] = atdata.CIDLink(*op.CID)
					recRevs[op.Collection+"/"+op.RKey] = res.Rev
				} else {
					delete(recRevs, op.Collection+"/"+op.RKey)
				}
				ops = append(ops, m)
			}
			var sinceV any
			if res.Since != nil {
				sinceV = *res.Since
			}
			evt := map[string]any{"repo": a.did.String(), "commit": atdata.CIDLink(res.Commit), "rev": res.Rev, "since": sinceV,
				"blocks": res.Event.Blocks, "ops": ops, "rebase": false, "tooBig": false, "blobs": []any{}}
			if res.PrevData != nil {
				evt["prevData"] = atdata.CIDLink(*res.PrevData)
			}
			seq(a.did, "append", cborMap(t, evt), now.Add(-2*time.Hour), false)
			f.windowSeqs = append(f.windowSeqs, f.seqHead)
		}
		commit(genesis, "")
		write := func(ops ...repo.WriteOp) {
			prev, _ := r.Head(ctx)
			res, err := r.Apply(ctx, repo.WriteRequest{Ops: ops, Signer: a.key, MissingBlobsOK: true})
			if err != nil {
				t.Fatal(err)
			}
			commit(res, prev.Rev)
		}
		post := func(rkey, text string, extra map[string]any) repo.WriteOp {
			rec := map[string]any{"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-26T00:00:00.000Z"}
			for k, v := range extra {
				rec[k] = v
			}
			return repo.WriteOp{Action: repo.ActionCreate, Collection: "app.bsky.feed.post", RKey: syntax.RecordKey(rkey), Record: cborMap(t, rec)}
		}
		blobRef := func(data []byte) (map[string]any, cid.Cid) {
			c := blobstore.CIDOf(data)
			return map[string]any{"$type": "blob", "ref": atdata.CIDLink(c), "mimeType": "image/png", "size": int64(len(data))}, c
		}
		write(post("3kaaaaaaaaa22", "first", nil), post("3kaaaaaaaab22", "second", nil))
		if h, err := r.Head(ctx); err == nil {
			a.postsRev = h.Rev
		}
		write(post("3kaaaaaaaac22", "to be deleted", nil))
		write(repo.WriteOp{Action: repo.ActionDelete, Collection: "app.bsky.feed.post", RKey: "3kaaaaaaaac22"})
		addBlob := func(data []byte, takedown string) cid.Cid {
			ref, c := blobRef(data)
			_ = ref
			if _, err := store.Exec("INSERT INTO blob (cid, mimeType, size, createdAt, takedownRef) VALUES (?, ?, ?, ?, ?)",
				c.String(), "image/png", len(data), iso(created), nullable(takedown)); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(blobDir, a.did.String(), c.String())
			if takedown != "" {
				p = filepath.Join(blobDir, "quarantine", a.did.String(), c.String())
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return c
		}
		if a.blob != nil {
			ref, _ := blobRef(a.blob)
			c := addBlob(a.blob, "")
			write(repo.WriteOp{Action: repo.ActionCreate, Collection: "app.bsky.actor.profile", RKey: "self",
				Record: cborMap(t, map[string]any{"$type": "app.bsky.actor.profile", "displayName": a.handle, "avatar": ref})})
			if _, err := store.Exec("INSERT INTO record_blob (blobCid, recordUri) VALUES (?, ?)", c.String(), "at://"+a.did.String()+"/app.bsky.actor.profile/self"); err != nil {
				t.Fatal(err)
			}
		}
		if a.takenDownBlob != nil {
			ref, _ := blobRef(a.takenDownBlob)
			addBlob(a.takenDownBlob, "blob-ticket")
			write(post("3kaaaaaaaad22", "with a picture", map[string]any{"embed": map[string]any{"$type": "app.bsky.embed.images",
				"images": []any{map[string]any{"alt": "", "image": ref}}}}))
			a.takenDownRecord = "app.bsky.feed.post/3kaaaaaaaad22"
		}
		if a.temp != nil {
			c := blobstore.CIDOf(a.temp)
			if _, err := store.Exec("INSERT INTO blob (cid, mimeType, size, tempKey, createdAt) VALUES (?, ?, ?, ?, ?)",
				c.String(), "text/plain", len(a.temp), "tempkey1", iso(created)); err != nil {
				t.Fatal(err)
			}
		}
		a.head, _ = r.Head(ctx)
		r.Release()
		if _, err := store.Exec("INSERT INTO repo_root (did, cid, rev, indexedAt) VALUES (?, ?, ?, ?)", a.did, a.head.Commit.String(), a.head.Rev, iso(now)); err != nil {
			t.Fatal(err)
		}
		if _, err := accountDB.Exec("INSERT INTO repo_root (did, cid, rev, indexedAt) VALUES (?, ?, ?, ?)", a.did, a.head.Commit.String(), a.head.Rev, iso(now)); err != nil {
			t.Fatal(err)
		}
		// The record index, as the reference keeps it (records of the head, each at the rev that last wrote it).
		r, _ = scratch.Repo(ctx, a.did)
		for path, rev := range recRevs {
			coll, rkey, _ := strings.Cut(path, "/")
			c, _, err := r.GetRecord(ctx, coll, rkey)
			if err != nil {
				t.Fatal(err)
			}
			a.records[path] = c
			var td any
			if path == a.takenDownRecord {
				td = "record-ticket"
			}
			if _, err := store.Exec("INSERT INTO record (uri, cid, collection, rkey, repoRev, indexedAt, takedownRef) VALUES (?, ?, ?, ?, ?, ?, ?)",
				"at://"+a.did.String()+"/"+path, c.String(), coll, rkey, rev, iso(now), td); err != nil {
				t.Fatal(err)
			}
		}
		r.Release()
		if a == alice {
			if _, err := store.Exec("INSERT INTO account_pref (name, valueJson) VALUES (?, ?), (?, ?)",
				"app.bsky.actor.defs#adultContentPref", `{"$type":"app.bsky.actor.defs#adultContentPref","enabled":true}`,
				"app.bsky.actor.defs#savedFeedsPrefV2", `{"$type":"app.bsky.actor.defs#savedFeedsPrefV2","items":[]}`); err != nil {
				t.Fatal(err)
			}
		}
		store.Close()

		if a.appPassword != "" {
			h, err := auth.HashAppPassword(a.did, a.appPassword)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := accountDB.Exec("INSERT INTO app_password (did, name, passwordScrypt, createdAt, privileged) VALUES (?, ?, ?, ?, ?)",
				a.did, "phone", h, iso(created), a == alice); err != nil {
				t.Fatal(err)
			}
		}
		status := map[string]any{"did": a.did.String(), "active": true}
		if a.deactivated {
			status = map[string]any{"did": a.did.String(), "active": false, "status": "deactivated"}
		}
		if a.takendown {
			status = map[string]any{"did": a.did.String(), "active": false, "status": "takendown"}
		}
		seq(a.did, "account", cborMap(t, status), now.Add(-time.Hour), false)
		f.windowSeqs = append(f.windowSeqs, f.seqHead)
	}
	// Rows the reference never sends: an invalidated event and a legacy type.
	seq(alice.did, "append", []byte{0xa0}, now.Add(-30*time.Minute), true)
	seq(alice.did, "handle", cborMap(t, map[string]any{"did": alice.did.String(), "handle": alice.handle}), now.Add(-20*time.Minute), false)

	f.refreshID = "refresh-token-1"
	if _, err := accountDB.Exec("INSERT INTO refresh_token (id, did, expiresAt, appPasswordName) VALUES (?, ?, ?, ?), (?, ?, ?, NULL)",
		f.refreshID, alice.did, iso(now.Add(30*24*time.Hour)), "phone", "expired-token", alice.did, iso(now.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	f.inviteCode = "localhost-abcde-fghij"
	if _, err := accountDB.Exec("INSERT INTO invite_code (code, availableUses, disabled, forAccount, createdBy, createdAt) VALUES (?, 2, 0, 'admin', 'admin', ?)",
		f.inviteCode, iso(now.Add(-20*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := accountDB.Exec("INSERT INTO invite_code_use (code, usedBy, usedAt) VALUES (?, ?, ?)", f.inviteCode, bob.did, iso(now.Add(-9*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := accountDB.Exec("INSERT INTO email_token (purpose, did, token, requestedAt) VALUES ('confirm_email', ?, 'AAAAA-BBBBB', ?)", bob.did, iso(now)); err != nil {
		t.Fatal(err)
	}
	return f
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func shard(did syntax.DID) string {
	h := sha256.Sum256([]byte(did))
	return hex.EncodeToString(h[:1])
}

// treeHash hashes every file (path, mode, content) under root, to show a run left it as it was.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", strings.TrimPrefix(p, root), info.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}
