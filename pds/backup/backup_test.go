package backup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/backup"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/sequencer"
)

// dirConfig is a backup to a new directory with a passphrase.
func dirConfig(t *testing.T) *backup.Config {
	cfg, err := backup.ConfigFromEnv(env{
		"PDS_BACKUP_URL": "file://" + t.TempDir(),
		"PDS_BACKUP_KEY": "correct horse battery staple",
	}.get)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// s3Config is a backup to a new bucket with an age identity: of an in-process S3 server (gofakes3 on a loopback
// socket, as the blob store's tests), or with PDS_TEST_S3_ENDPOINT set (scripts/s3-seaweedfs.sh), of that one
// (a bucket named after PDS_TEST_S3_BUCKET per test, emptied and removed after it).
func s3Config(t *testing.T) *backup.Config {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e := env{
		"PDS_BACKUP_URL":                  "s3://pds-backup/server-1",
		"PDS_BACKUP_KEY":                  id.String(),
		"PDS_BACKUP_S3_REGION":            "us-east-1",
		"PDS_BACKUP_S3_FORCE_PATH_STYLE":  "true",
		"PDS_BACKUP_S3_ACCESS_KEY_ID":     "test",
		"PDS_BACKUP_S3_SECRET_ACCESS_KEY": "test-secret",
	}
	if ep := os.Getenv("PDS_TEST_S3_ENDPOINT"); ep != "" {
		t.Logf("backup to S3 at %s", ep)
		e["PDS_BACKUP_S3_ENDPOINT"] = ep
		e["PDS_BACKUP_URL"] = fmt.Sprintf("s3://%s-backup-%d/server-1", os.Getenv("PDS_TEST_S3_BUCKET"), s3Buckets.Add(1))
		e["PDS_BACKUP_S3_REGION"] = os.Getenv("PDS_TEST_S3_REGION")
		e["PDS_BACKUP_S3_ACCESS_KEY_ID"] = os.Getenv("PDS_TEST_S3_ACCESS_KEY_ID")
		e["PDS_BACKUP_S3_SECRET_ACCESS_KEY"] = os.Getenv("PDS_TEST_S3_SECRET_ACCESS_KEY")
	} else {
		srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(srv.Close)
		e["PDS_BACKUP_S3_ENDPOINT"] = srv.URL
	}
	cfg, err := backup.ConfigFromEnv(e.get)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blobstore.NewS3(*cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Client().MakeBucket(ctx, cfg.S3.Bucket, minio.MakeBucketOptions{Region: cfg.S3.Region}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for o := range b.Client().ListObjects(ctx, cfg.S3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				b.Client().RemoveObject(ctx, cfg.S3.Bucket, o.Key, minio.RemoveObjectOptions{})
			}
		}
		b.Client().RemoveBucket(ctx, cfg.S3.Bucket)
	})
	return cfg
}

var s3Buckets atomic.Int64

// targets are the backup locations the round tests run against.
var targets = []struct {
	name string
	cfg  func(*testing.T) *backup.Config
}{{"dir", dirConfig}, {"s3", s3Config}}

type env map[string]string

func (e env) get(k string) string { return e[k] }

func source(p *testpds.PDS) backup.Source {
	return backup.Source{DataDirectory: p.Config.DataDirectory, BlobDirectory: p.Config.BlobstoreDisk}
}

// keys lists the store's objects by key with their sizes.
func keys(t *testing.T, st backup.Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	if err := st.List(context.Background(), "", func(o backup.Object) error { out[o.Key] = o.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIncrementalRoundsVerifyAndRestore(t *testing.T) {
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			ctx := context.Background()
			p := testpds.Start(t, testpds.Options{})
			var accts []*testpds.Account
			for i := range 3 {
				a := p.CreateAccount(fmt.Sprintf("bk%s%d", target.name, i))
				img := testpds.UploadBlobOK(t, p, a.AccessJwt, "image/png", testpds.PNG(uint64(i), 3000))
				if r := testpds.CreateRecord(t, p, a, "app.bsky.feed.post", testpds.ImagePost("hello", img)); r.Status != http.StatusOK {
					t.Fatal(r)
				}
				accts = append(accts, a)
			}
			cfg := target.cfg(t)
			b, err := backup.Open(ctx, cfg, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			m1, st1, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			if !st1.FullScan || st1.Copied != 3 || st1.Blobs != 3 || len(m1.Accounts) != 3 {
				t.Fatalf("first round: %+v, %d accounts", st1, len(m1.Accounts))
			}
			before := keys(t, b.Store())
			for k := range before {
				if strings.HasPrefix(k, "blobs/") && strings.Contains(k, "..") {
					t.Fatal(k)
				}
			}

			// Only account 0 writes (a new blob too): the next round copies it alone and uploads the new blob.
			a := accts[0]
			img := testpds.UploadBlobOK(t, p, a.AccessJwt, "image/png", testpds.PNG(99, 5000))
			if r := testpds.CreateRecord(t, p, a, "app.bsky.feed.post", testpds.ImagePost("again", img)); r.Status != http.StatusOK {
				t.Fatal(r)
			}
			m2, st2, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			if st2.FullScan || st2.Copied != 1 || st2.Blobs != 1 {
				t.Fatalf("second round copied %d repos and %d blobs (full scan %v), want 1 and 1", st2.Copied, st2.Blobs, st2.FullScan)
			}
			after := keys(t, b.Store())
			var newRepos int
			for k := range after {
				if _, ok := before[k]; !ok && strings.HasPrefix(k, "objects/") {
					newRepos++
				}
			}
			// New objects: account 0's repo, and at most the service-wide files (account.sqlite, the log,
			// blobgc.sqlite) whose content changed; never the other accounts' repositories.
			if newRepos > 4 {
				t.Fatalf("second round added %d objects", newRepos)
			}
			for _, other := range accts[1:] {
				if m2.Accounts[other.DID].Copied != m1.ID || m2.Accounts[other.DID].Repo != m1.Accounts[other.DID].Repo {
					t.Fatalf("%s was copied again: %+v", other.DID, m2.Accounts[other.DID])
				}
			}
			if m2.Accounts[a.DID].Copied != m2.ID || m2.Accounts[a.DID].Rev == m1.Accounts[a.DID].Rev || len(m2.Accounts[a.DID].Blobs) != 2 {
				t.Fatalf("the writer's entry: %+v", m2.Accounts[a.DID])
			}
			if m2.Seq <= m1.Seq {
				t.Fatalf("seq %d after %d", m2.Seq, m1.Seq)
			}
			// The log: the first round copies it whole, the next one uploads only a segment of its new events.
			if m2.Log.Base != m1.Log.Base || len(m2.Log.Segments) != 1 || m2.Log.Segments[0].Size >= m1.Log.Base.Size {
				t.Fatalf("second round's log %+v, first %+v", m2.Log, m1.Log)
			}

			// A round without writes copies no repository.
			m3, st3, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			if st3.Copied != 0 || st3.Blobs != 0 || st3.Objects != 1 {
				t.Fatalf("idle round: %+v", st3)
			}
			t.Logf("rounds: full %d objects %d bytes; one writer %d objects %d bytes; idle %d objects %d bytes",
				st1.Objects, st1.Bytes, st2.Objects, st2.Bytes, st3.Objects, st3.Bytes)

			// Verify with a fresh process's view (the key from the variables again).
			b2, err := backup.Open(ctx, cfg, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := b2.Verify(ctx, m2.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Accounts != 3 || rep.Records != 4 || rep.Blobs != 4 {
				t.Fatalf("verify: %+v", rep)
			}
			rounds, err := b2.Rounds(ctx)
			if err != nil || len(rounds) != 3 {
				t.Fatalf("rounds %v %v", rounds, err)
			}
			// Restore the first round: it is the state before the second write.
			dir := filepath.Join(t.TempDir(), "data")
			if _, err := b2.Restore(ctx, m1.ID, dir, nil); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"account.sqlite", "sequencer.sqlite", "secrets.json", backup.RestoredMarkerFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if mk, err := backup.ReadRestoredMarker(dir); err != nil || mk.Round != m1.ID || mk.Seq != m1.Seq {
				t.Fatalf("marker %+v %v", mk, err)
			}

			// The newest round's log, rebuilt from the copy and two segments, ends at its seq.
			dir3 := filepath.Join(t.TempDir(), "data")
			if _, err := b2.Restore(ctx, m3.ID, dir3, nil); err != nil {
				t.Fatal(err)
			}
			seq, err := sequencer.Open(ctx, filepath.Join(dir3, "sequencer.sqlite"), sequencer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			evs, err := seq.Events(ctx, m1.Seq, 1000)
			if err != nil || seq.Head() != m3.Seq || len(evs) == 0 || evs[len(evs)-1].Seq != m3.Seq || evs[0].Seq != m1.Seq+1 {
				t.Fatalf("restored log: head %d (want %d), %d events after %d (%v)", seq.Head(), m3.Seq, len(evs), m1.Seq, err)
			}
			seq.Close()

			// Another process (b2) continues the backup: its first round compares every repository's rev with
			// the manifest and copies only the one that wrote since.
			if r := testpds.CreateRecord(t, p, accts[1], "app.bsky.feed.post", testpds.Post("from another process")); r.Status != http.StatusOK {
				t.Fatal(r)
			}
			m4, st4, err := b2.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			if st4.Copied != 1 || m4.Accounts[accts[1].DID].Copied != m4.ID || m4.Accounts[accts[2].DID].Repo != m3.Accounts[accts[2].DID].Repo {
				t.Fatalf("first round of another process: %+v", st4)
			}

			// Keep only the newest round: rounds 1 to 3 go, and the objects only they use (account 0's first
			// repository copy), but not account 2's copy of round 1, which round 4 still uses.
			cfg.Retention = backup.Retention{Last: 1}
			ps, err := b2.Prune(ctx, time.Now().Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			left := keys(t, b.Store())
			if ps.Rounds != 3 || ps.Objects < 1 {
				t.Fatalf("prune: %+v", ps)
			}
			if _, ok := left[m1.Accounts[a.DID].Repo.Key()]; ok {
				t.Fatal("prune kept a repository copy no kept round uses")
			}
			if _, ok := left[m4.Accounts[accts[2].DID].Repo.Key()]; !ok || m4.Accounts[accts[2].DID].Copied != m1.ID {
				t.Fatalf("prune removed %s's copy from round 1, which round 4 uses", accts[2].DID)
			}
			if _, err := b2.Verify(ctx, m4.ID, nil); err != nil {
				t.Fatalf("the kept round after pruning: %v", err)
			}
		})
	}
}

// TestVerifyFailsOnTampering: a passing control, then each kind of damage fails verify: a flipped byte in a
// repository object, in a blob, in the manifest; a missing object; a wrong key; an object swapped for another.
func TestVerifyFailsOnTampering(t *testing.T) {
	ctx := context.Background()
	p := testpds.Start(t, testpds.Options{})
	for i := range 2 {
		a := p.CreateAccount(fmt.Sprintf("tamper%d", i))
		img := testpds.UploadBlobOK(t, p, a.AccessJwt, "image/png", testpds.PNG(uint64(i+10), 2000))
		if r := testpds.CreateRecord(t, p, a, "app.bsky.feed.post", testpds.ImagePost("x", img)); r.Status != http.StatusOK {
			t.Fatal(r)
		}
	}
	cfg := dirConfig(t)
	b, err := backup.Open(ctx, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := b.Round(ctx, source(p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, m.ID, nil); err != nil {
		t.Fatalf("control: %v", err)
	}
	var repoKey, blobKey string
	for _, a := range m.Accounts {
		repoKey, blobKey = a.Repo.Key(), "blobs/"+a.Blobs[0]
	}
	path := func(key string) string { return filepath.Join(cfg.Dir, filepath.FromSlash(key)) }
	damage := func(t *testing.T, key string, fn func([]byte) []byte) {
		orig, err := os.ReadFile(path(key))
		if err != nil {
			t.Fatal(err)
		}
		if fn != nil {
			if err := os.WriteFile(path(key), fn(append([]byte(nil), orig...)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { os.WriteFile(path(key), orig, 0o600) })
	}
	flip := func(b []byte) []byte { b[len(b)-20] ^= 0x01; return b }
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T)
		want   error
	}{
		{"flipped byte in a repository", func(t *testing.T) { damage(t, repoKey, flip) }, backup.ErrCorrupt},
		{"flipped byte in a blob", func(t *testing.T) { damage(t, blobKey, flip) }, backup.ErrCorrupt},
		{"flipped byte in the manifest", func(t *testing.T) { damage(t, "rounds/"+m.ID, flip) }, backup.ErrCorrupt},
		{"missing repository", func(t *testing.T) { damage(t, repoKey, nil); os.Remove(path(repoKey)) }, backup.ErrNotFound},
		{"missing blob", func(t *testing.T) { damage(t, blobKey, nil); os.Remove(path(blobKey)) }, backup.ErrNotFound},
		{"repository swapped for another object", func(t *testing.T) {
			other, err := os.ReadFile(path(m.Files[backup.FileSecrets].Key()))
			if err != nil {
				t.Fatal(err)
			}
			damage(t, repoKey, func([]byte) []byte { return other })
		}, backup.ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.tamper(t)
			b, err := backup.Open(ctx, cfg, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Verify(ctx, m.ID, nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("verify after tampering: %v, want %v", err, c.want)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		wrong := *cfg
		wrong.Key = "not the passphrase"
		if _, err := backup.Open(ctx, &wrong, nil, false); !errors.Is(err, backup.ErrWrongKey) {
			t.Fatalf("open with a wrong passphrase: %v", err)
		}
		id, _ := age.GenerateX25519Identity()
		wrong.Key = id.String()
		b, err := backup.Open(ctx, &wrong, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Verify(ctx, m.ID, nil); !errors.Is(err, backup.ErrWrongKey) {
			t.Fatalf("verify with another identity: %v", err)
		}
	})
	// Undamaged again (the cleanups restored the files): verify passes.
	b2, _ := backup.Open(ctx, cfg, nil, false)
	if _, err := b2.Verify(ctx, m.ID, nil); err != nil {
		t.Fatalf("after the cleanups: %v", err)
	}
}

// TestRoundCopiesOnlyWhatChanged counts a round's uploads object by object: a blob shared by accounts is
// uploaded once, a round after one account wrote uploads exactly that account's repository, the log's segment,
// the service-wide files whose content changed and the manifest (never another account's repository, never a
// blob again), and an idle round uploads its manifest alone. Every uploaded object is compressed.
func TestRoundCopiesOnlyWhatChanged(t *testing.T) {
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			ctx := context.Background()
			p := testpds.Start(t, testpds.Options{})
			shared := testpds.PNG(7, 4000)
			var accts []*testpds.Account
			for i := range 4 {
				a := p.CreateAccount(fmt.Sprintf("only%s%d", target.name, i))
				accts = append(accts, a)
				var img []byte
				switch i {
				case 0, 1:
					img = shared // the same bytes, so the same CID, in two accounts
				case 2:
					img = testpds.PNG(8, 4000)
				default:
					continue
				}
				ref := testpds.UploadBlobOK(t, p, a.AccessJwt, "image/png", img)
				if r := testpds.CreateRecord(t, p, a, "app.bsky.feed.post", testpds.ImagePost("hi", ref)); r.Status != http.StatusOK {
					t.Fatal(r)
				}
			}
			b, err := backup.Open(ctx, target.cfg(t), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			blobKeys := func(ks map[string]int64) (n int) {
				for k := range ks {
					if strings.HasPrefix(k, "blobs/") {
						n++
					}
				}
				return n
			}
			m1, st1, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			k1 := keys(t, b.Store())
			if st1.Blobs != 2 || blobKeys(k1) != 2 || st1.Copied != 4 {
				t.Fatalf("first round: %d blobs uploaded, %d blob objects (want 2 and 2), %d repositories", st1.Blobs, blobKeys(k1), st1.Copied)
			}
			if len(m1.Accounts[accts[0].DID].Blobs) != 1 || m1.Accounts[accts[0].DID].Blobs[0] != m1.Accounts[accts[1].DID].Blobs[0] {
				t.Fatalf("the shared blob: %v and %v", m1.Accounts[accts[0].DID].Blobs, m1.Accounts[accts[1].DID].Blobs)
			}
			for did, a := range m1.Accounts {
				if a.Repo.Codec != backup.CodecZstd || k1[a.Repo.Key()] >= a.Repo.Size {
					t.Fatalf("%s's repository: %d bytes stored for %d of snapshot (codec %q)", did, k1[a.Repo.Key()], a.Repo.Size, a.Repo.Codec)
				}
			}

			// Account 3 posts the shared image too (its own upload of the same bytes).
			a3 := accts[3]
			ref := testpds.UploadBlobOK(t, p, a3.AccessJwt, "image/png", shared)
			if r := testpds.CreateRecord(t, p, a3, "app.bsky.feed.post", testpds.ImagePost("me too", ref)); r.Status != http.StatusOK {
				t.Fatal(r)
			}
			m2, st2, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			k2 := keys(t, b.Store())
			if st2.Copied != 1 || st2.Blobs != 0 || blobKeys(k2) != 2 {
				t.Fatalf("second round: %d repositories, %d blobs uploaded, %d blob objects; want 1, 0, 2", st2.Copied, st2.Blobs, blobKeys(k2))
			}
			// Every new object is named: account 3's repository, the log segment, a service-wide file, the manifest.
			allowed := map[string]string{m2.Accounts[a3.DID].Repo.Key(): "account 3's repository", "rounds/" + m2.ID: "the manifest"}
			for _, s := range m2.Log.Segments[len(m1.Log.Segments):] {
				allowed[s.Key()] = "the log segment"
			}
			for name, f := range m2.Files {
				allowed[f.Key()] = name
			}
			var added int
			var addedBytes int64
			for k, size := range k2 {
				if _, ok := k1[k]; ok {
					continue
				}
				if allowed[k] == "" {
					t.Errorf("the second round uploaded %s, which is none of what changed", k)
				}
				added++
				addedBytes += size
			}
			if added != st2.Objects || addedBytes != st2.Bytes {
				t.Fatalf("second round: %d objects of %d bytes in the store, its stats say %d and %d", added, addedBytes, st2.Objects, st2.Bytes)
			}
			for _, a := range accts[:3] {
				if m2.Accounts[a.DID].Repo != m1.Accounts[a.DID].Repo {
					t.Fatalf("%s did not write and was copied again", a.DID)
				}
			}
			if got := m2.Accounts[a3.DID].Blobs; len(got) != 1 || got[0] != m1.Accounts[accts[0].DID].Blobs[0] {
				t.Fatalf("account 3's blobs %v", got)
			}

			// Nothing changed: the manifest alone.
			m3, st3, err := b.Round(ctx, source(p))
			if err != nil {
				t.Fatal(err)
			}
			k3 := keys(t, b.Store())
			if st3.Objects != 1 || st3.Copied != 0 || st3.Bytes != st3.ManifestSize || len(k3) != len(k2)+1 || k3["rounds/"+m3.ID] != st3.Bytes {
				t.Fatalf("idle round: %+v, %d objects before, %d after", st3, len(k2), len(k3))
			}
			if _, err := b.Verify(ctx, m3.ID, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
