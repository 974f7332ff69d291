package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/backup"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// benchDID is a did:plc-shaped DID for account i.
func benchDID(i int) syntax.DID {
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	return syntax.DID("did:plc:" + base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").EncodeToString(h[:15]))
}

func benchPosts(n, round int) []repo.WriteOp {
	var ops []repo.WriteOp
	for j := range n {
		rec, _ := atdata.MarshalCBOR(map[string]any{"$type": "app.bsky.feed.post", "text": fmt.Sprintf("post %d of round %d", j, round), "createdAt": "2026-01-01T00:00:00Z"})
		ops = append(ops, repo.WriteOp{Action: repo.ActionCreate, Collection: "app.bsky.feed.post",
			RKey: syntax.RecordKey(fmt.Sprintf("r%dx%d", round, j)), Record: rec})
	}
	return ops
}

// BenchmarkRoundManyAccounts: a data directory of PDS_BENCH_BACKUP_ACCOUNTS accounts (default 10,000; each a
// repository with 5 posts) backed up once in full, then each iteration 100 accounts write a post (with their
// #commit-like events in the log) and one round is timed: the incremental round's time, objects and bytes.
func BenchmarkRoundManyAccounts(b *testing.B) {
	n := 10_000
	if v := os.Getenv("PDS_BENCH_BACKUP_ACCOUNTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	const writers = 100
	ctx := context.Background()
	dataDir := b.TempDir()
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		b.Fatal(err)
	}
	store, err := repo.OpenStore(filepath.Join(dataDir, "actors"), repo.StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	accts, err := accountstore.Open(ctx, filepath.Join(dataDir, "account.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	defer accts.Close()
	seq, err := sequencer.Open(ctx, filepath.Join(dataDir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer seq.Close()
	setup := time.Now()
	write := func(did syntax.DID, ops []repo.WriteOp) {
		r, err := store.Repo(ctx, did)
		if err != nil {
			b.Fatal(err)
		}
		res, err := r.Apply(ctx, repo.WriteRequest{Signer: key, DeferSync: true, Ops: ops})
		r.Release()
		if err != nil {
			b.Fatal(err)
		}
		if err := <-seq.EnqueueSync(did, res.Rev, nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		did := benchDID(i)
		if _, err := store.Create(ctx, did, key); err != nil {
			b.Fatal(err)
		}
		write(did, benchPosts(5, 0))
	}
	b.Logf("setup: %d accounts in %s", n, time.Since(setup).Round(time.Second))

	cfg, err := backup.ConfigFromEnv(env{"PDS_BACKUP_URL": "file://" + b.TempDir(), "PDS_BACKUP_KEY": "bench passphrase"}.get)
	if err != nil {
		b.Fatal(err)
	}
	bk, err := backup.Open(ctx, cfg, nil, true)
	if err != nil {
		b.Fatal(err)
	}
	src := backup.Source{DataDirectory: dataDir}
	seq.Flush(ctx)
	_, full, err := bk.Round(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("full round: %d accounts, %d objects, %d bytes, %s", full.Accounts, full.Objects, full.Bytes, full.Duration.Round(time.Millisecond))
	b.ResetTimer()
	var objects, bytes, manifest int64
	for it := range b.N {
		b.StopTimer()
		for w := range writers {
			write(benchDID((it*writers+w*97)%n), benchPosts(1, it+1))
		}
		seq.Flush(ctx)
		b.StartTimer()
		_, st, err := bk.Round(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		if st.Copied != writers {
			b.Fatalf("round copied %d repositories, want %d", st.Copied, writers)
		}
		objects += int64(st.Objects)
		bytes += st.Bytes
		manifest += st.ManifestSize
	}
	b.ReportMetric(float64(objects)/float64(b.N), "objects/round")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/round")
	b.ReportMetric(float64(manifest)/float64(b.N), "manifest-bytes/round")
}
