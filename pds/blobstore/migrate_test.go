package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/blobstore"
)

var farFuture = time.Now().Add(24 * time.Hour)

type blobSet map[string][]byte // did + "/" + cid -> content

func populate(t *testing.T, b blobstore.Backend, n int) (blobSet, cid.Cid) {
	t.Helper()
	set := blobSet{}
	for i := range n {
		did := syntax.DID(alice)
		if i%3 == 0 {
			did = bob
		}
		data := randomBytes(uint64(100+i), 1000+i*997)
		c := store(t, b, did, data)
		set[did.String()+"/"+c.String()] = data
	}
	// One taken-down blob: it must arrive quarantined.
	q := randomBytes(999, 4321)
	qc := store(t, b, alice, q)
	if err := b.Quarantine(context.Background(), alice, qc); err != nil {
		t.Fatal(err)
	}
	return set, qc
}

// sameBlobs checks that dst holds exactly set plus the quarantined blob q (quarantined).
func sameBlobs(t *testing.T, dst blobstore.Backend, set blobSet, q cid.Cid) {
	t.Helper()
	entries := list(t, dst)
	if len(entries) != len(set)+1 {
		t.Fatalf("destination has %d blobs, want %d", len(entries), len(set)+1)
	}
	for _, e := range entries {
		if e.CID.Equals(q) {
			if !e.Quarantined {
				t.Fatal("the quarantined blob arrived readable")
			}
			continue
		}
		want, ok := set[e.DID.String()+"/"+e.CID.String()]
		if !ok {
			t.Fatalf("unexpected blob %s/%s", e.DID, e.CID)
		}
		if got := readAll(t, dst, e.DID, e.CID); !bytes.Equal(got, want) {
			t.Fatalf("blob %s differs", e.CID)
		}
	}
}

func TestMigrateDiskS3Disk(t *testing.T) {
	ctx := context.Background()
	target := newS3Target(t)
	src, err := blobstore.NewDisk(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	set, q := populate(t, src, 12)
	s3 := target.backend(t)

	// Interrupted after a few blobs, then resumed: nothing is copied twice, everything arrives.
	cctx, cancel := context.WithCancel(ctx)
	var last blobstore.MigrateProgress
	p, failures, err := blobstore.Migrate(cctx, src, s3, blobstore.MigrateOptions{Concurrency: 1, Progress: func(p blobstore.MigrateProgress) {
		last = p
		if p.Done == 5 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) || len(failures) != 0 {
		t.Fatalf("interrupted migration: %v, %v", err, failures)
	}
	if p.Total != 13 || p.Copied < 5 || p.Copied == 13 || last.Done != p.Done {
		t.Fatalf("interrupted migration progress %+v", p)
	}
	firstCopied := p.Copied
	p, failures, err = blobstore.Migrate(ctx, src, s3, blobstore.MigrateOptions{})
	if err != nil || len(failures) != 0 {
		t.Fatalf("resumed migration: %v, %v", err, failures)
	}
	if p.Skipped != firstCopied || p.Copied != 13-firstCopied || p.Done != 13 || p.DoneBytes != p.TotalBytes {
		t.Fatalf("resumed migration progress %+v (first run copied %d)", p, firstCopied)
	}
	sameBlobs(t, s3, set, q)

	// And back to another disk.
	back, err := blobstore.NewDisk(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, failures, err := blobstore.Migrate(ctx, s3, back, blobstore.MigrateOptions{}); err != nil || len(failures) != 0 {
		t.Fatalf("S3 -> disk: %v, %v", err, failures)
	}
	sameBlobs(t, back, set, q)
}

func TestMigrateVerifiesHashes(t *testing.T) {
	ctx := context.Background()
	srcDir := t.TempDir()
	src, _ := blobstore.NewDisk(srcDir, "")
	dstDir := t.TempDir()
	dst, _ := blobstore.NewDisk(dstDir, "")
	good := store(t, src, alice, randomBytes(1, 5000))
	bad := store(t, src, alice, randomBytes(2, 5000))
	// Bit rot in the source: the copy must refuse it rather than store content under the wrong CID.
	corrupt(t, srcDir, alice, bad)

	p, failures, err := blobstore.Migrate(ctx, src, dst, blobstore.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Copied != 1 || p.Failed != 1 || len(failures) != 1 || !failures[0].Entry.CID.Equals(bad) || !errors.Is(failures[0].Err, blobstore.ErrCorrupt) {
		t.Fatalf("progress %+v failures %v", p, failures)
	}
	if _, err := dst.Stat(ctx, alice, bad); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatal("a corrupt blob was copied")
	}
	noTemps(t, dst)

	// A corrupted copy at the destination is only noticed (and repaired) with Verify.
	corrupt(t, dstDir, alice, good)
	if p, _, _ := blobstore.Migrate(ctx, src, dst, blobstore.MigrateOptions{}); p.Skipped != 1 {
		t.Fatalf("without Verify a same-size destination blob is trusted: %+v", p)
	}
	if p, _, _ := blobstore.Migrate(ctx, src, dst, blobstore.MigrateOptions{Verify: true}); p.Copied != 1 {
		t.Fatalf("with Verify the corrupted copy must be replaced: %+v", p)
	}
	if got := readAll(t, dst, alice, good); !bytes.Equal(got, randomBytes(1, 5000)) {
		t.Fatal("destination not repaired")
	}
}

// corrupt flips a byte of a blob file in a Disk store.
func corrupt(t *testing.T, dir, did string, c cid.Cid) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*", did, c.String()))
	if len(matches) != 1 {
		t.Fatalf("blob file of %s not found", c)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(matches[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
}
