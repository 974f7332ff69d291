package car

// Fuzz targets for the CAR reader, the import verifier and the record-block checks. This package links no
// database, so they run at the fuzzer's full speed (package repo's store-level targets do not). Found crashers
// stay in testdata/fuzz/<target>/ and are replayed by the plain `go test` run; scripts/fuzz.sh runs every target.

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

// FuzzCARReader: the CAR reader alone: no panic, every refusal ErrInvalid or ErrTooLarge, and every block it
// hands on is the block its CID names.
func FuzzCARReader(f *testing.F) {
	key := fixedKey(f, 4)
	good := repoCAR(f, "did:plc:fuzzcarreader", key, posts(f, 30))
	f.Add(good)
	f.Add(good[:len(good)-10])
	f.Add(repoCAR(f, "did:plc:fuzzcarreader", key, posts(f, 1)))
	f.Add([]byte{0x01, 0xa0})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _, err := Read(context.Background(), bytes.NewReader(body), 1<<20, func(_ context.Context, c cid.Cid, data []byte) error {
			if CheckBlock(c, data) != nil {
				t.Fatalf("the reader handed on a block its CID does not name: %s", c)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("reader error is neither invalid nor too large: %v", err)
		}
	})
}

// FuzzVerifyCAR: arbitrary bytes through everything an import checks before it stores anything: the reader,
// the commit (DID, signature) and the walk of the MST and its records. Either it fails with ErrInvalid or
// ErrTooLarge, or the walk's records, in the order it gave them, are a strictly increasing key set whose tree,
// built afresh by indigo, has exactly the commit's data root (so an accepted CAR is a complete, canonical tree).
func FuzzVerifyCAR(f *testing.F) {
	did := syntax.DID("did:plc:fuzzverify")
	key := fixedKey(f, 3)
	pub, err := key.PublicKey()
	if err != nil {
		f.Fatal(err)
	}
	good := repoCAR(f, did.String(), key, posts(f, 30))
	f.Add(good)
	f.Add(good[:len(good)-10])
	f.Add(repoCAR(f, did.String(), key, posts(f, 3)))
	f.Add(repoCAR(f, did.String(), key, map[string][]byte{}))
	f.Add(repoCAR(f, "did:plc:someoneelse", key, posts(f, 2)))
	f.Add([]byte("this is not a CAR file at all"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := verify(body, did, pub); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error is neither invalid nor too large: %v", err)
		}
	})
}

// verify is the import's check, in memory; on success it compares the walked records with indigo's tree.
func verify(body []byte, did syntax.DID, pub atcrypto.PublicKey) error {
	ctx := context.Background()
	blocks := memSource{}
	root, _, err := Read(ctx, bytes.NewReader(body), 1<<20, func(_ context.Context, c cid.Cid, data []byte) error {
		blocks[c] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		return err
	}
	data, ok := blocks[root]
	if !ok {
		return Invalid("root missing")
	}
	commit, err := VerifyCommit(data, did, pub)
	if err != nil {
		return err
	}
	var paths []string
	records := map[string]cid.Cid{}
	w := &Walker{Source: blocks, From: "the CAR",
		Record: func(_ context.Context, coll syntax.NSID, rkey syntax.RecordKey, c cid.Cid, data []byte, _ []cid.Cid) error {
			p := coll.String() + "/" + rkey.String()
			paths = append(paths, p)
			records[p] = c
			return nil
		},
	}
	if err := w.Walk(ctx, commit.Data); err != nil {
		return err
	}
	if !slices.IsSorted(paths) || len(records) != len(paths) || int64(len(paths)) != w.Records {
		panic("the walker gave records out of order or twice")
	}
	tree := mst.NewEmptyTree()
	for _, p := range slices.Sorted(maps.Keys(records)) {
		if _, err := tree.Insert([]byte(p), records[p]); err != nil {
			panic(err)
		}
	}
	want, err := tree.RootCID()
	if err != nil {
		panic(err)
	}
	if *want != commit.Data {
		panic("an accepted tree is not the canonical tree of its keys: data root " + commit.Data.String() + ", indigo's " + want.String())
	}
	return nil
}

// FuzzImportRecordBlock: a record block as importRepo reads it: the nesting check guards atdata's recursive
// decoder, and the blob references are found without panicking.
func FuzzImportRecordBlock(f *testing.F) {
	for _, rec := range posts(f, 1) {
		f.Add(rec)
	}
	rec, _ := atdata.MarshalCBOR(map[string]any{"$type": "x", "img": map[string]any{"cid": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm", "mimeType": "image/png"}})
	f.Add(rec)
	deep := []byte{0xa1, 0x61, 'n'}
	for range 200 {
		deep = append(deep, 0x81)
	}
	f.Add(append(deep, 0x01))
	f.Add([]byte{0x9f, 0x01, 0xff}) // indefinite length
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckNesting(b, MaxRecordNesting) != nil {
			return
		}
		if _, err := BlobRefs(b); err == nil {
			if _, err := atdata.UnmarshalCBOR(b); err != nil {
				t.Fatalf("blob refs found in a block atdata refuses: %v", err)
			}
		}
	})
}

// TestVerifySeeds: the seeds do what the fuzz targets assume: a good repository verifies, and another
// account's, a truncated one and garbage are refused as invalid.
func TestVerifySeeds(t *testing.T) {
	did := syntax.DID("did:plc:fuzzverify")
	key := fixedKey(t, 3)
	pub, _ := key.PublicKey()
	good := repoCAR(t, did.String(), key, posts(t, 30))
	for name, c := range map[string]struct {
		body []byte
		ok   bool
	}{
		"good":      {good, true},
		"empty":     {repoCAR(t, did.String(), key, map[string][]byte{}), true},
		"truncated": {good[:len(good)-10], false},
		"other DID": {repoCAR(t, "did:plc:someoneelse", key, posts(t, 2)), false},
		"other key": {repoCAR(t, did.String(), fixedKey(t, 5), posts(t, 2)), false},
		"garbage":   {[]byte("this is not a CAR file at all"), false},
	} {
		err := verify(c.body, did, pub)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
