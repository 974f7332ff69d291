package repo

// Fuzz targets for the repository store: CAR import through the store (a failed import changes nothing) and MST
// writes against a model. The CAR reader, the verifier and the record-block checks alone are fuzzed in package
// repo/car, whose test binary does not link SQLite. Found crashers stay in
// testdata/fuzz/<target>/ and are replayed by the plain `go test` run; scripts/fuzz.sh runs every target.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// FuzzImportCAR: arbitrary bytes as an importRepo body, through the CAR reader and the verifier (commit,
// signature, MST walk, records): an import either succeeds or fails with ErrImportInvalid/ErrImportTooLarge,
// never panics, and a failed import leaves the repository as it was. Seeds: valid repositories (one leaf, a
// larger tree, an empty one) and broken ones from TestImportRefusals' shapes.
func FuzzImportCAR(f *testing.F) {
	ctx := context.Background()
	did := syntax.DID("did:plc:fuzzimport")
	key := fixedKey(f, 3) // the fuzzer's workers run this setup again: the seeds must verify there too
	good := buildRepoCAR(f, did.String(), key, postsFor(f, 30, "fuzz")).bytes(f)
	f.Add(good)
	f.Add(good[:len(good)-10])
	f.Add(good[:5])
	f.Add(leafCAR(f, did.String(), key, "ok"))
	f.Add(leafCAR(f, did.String(), key, "mixed heights"))
	f.Add(leafCAR(f, did.String(), key, "out of order"))
	f.Add(buildRepoCAR(f, did.String(), key, map[string][]byte{}).bytes(f))
	f.Add([]byte("this is not a CAR file at all"))

	s := newTestStore(f, StoreOptions{})
	createOnly(f, s, did, newKey(f))
	opts := ImportOptions{VerifyKey: pubKey(f, key), Signer: newKey(f), MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := headOf(t, s, did)
		_, err := s.Import(ctx, did, bytes.NewReader(body), opts)
		if err != nil {
			if !errors.Is(err, ErrImportInvalid) && !errors.Is(err, ErrImportTooLarge) {
				t.Fatalf("import error is neither invalid nor too large: %v", err)
			}
			if after := headOf(t, s, did); after != before {
				t.Fatalf("a failed import changed the head: %+v -> %+v", before, after)
			}
		}
	})
}

func fixedKey(t testing.TB, b byte) atcrypto.PrivateKey {
	k, err := atcrypto.ParsePrivateBytesK256(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func headOf(t testing.TB, s *Store, did syntax.DID) Head {
	r, err := s.Repo(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	h, err := r.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// mstKeys is the fuzzer's key space: two collections, TIDs from a fixed clock (a spread of MST heights).
var mstKeys = func() []string {
	clock := syntax.NewTIDClock(7)
	var out []string
	for i := range 64 {
		col := "app.bsky.feed.post"
		if i%5 == 0 {
			col = "app.bsky.feed.like"
		}
		out = append(out, col+"/"+clock.Next().String())
	}
	return out
}()

var fuzzRepoSeq atomic.Int64

// FuzzMSTOps: sequences of creates, updates, deletes and lookups (two bytes each; the byte 255 ends a
// commit) applied through Repo.Apply must agree with a map: every commit's data root equals the root of
// indigo's MST built from scratch from the model's keys, lookups find exactly the model's records, an
// impossible write (create of an existing key, delete of a missing one) fails and changes nothing, and an
// update of a missing key creates it (putRecord's rule; an early run's input that assumed otherwise is kept
// in testdata/fuzz/FuzzMSTOps).
// Some commits go to a repository reopened from disk, so the lazily loaded tree is exercised too. Commits use
// DeferSync: the model check needs no fsync per commit, which made the target ten times slower.
func FuzzMSTOps(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 255, 1, 2, 2, 1, 2, 3})
	f.Add([]byte{0, 10, 0, 20, 0, 30, 0, 40, 0, 50, 255, 3, 20, 1, 30, 255, 1, 10, 1, 40, 1, 50, 1, 20})
	var all []byte
	for i := range 64 {
		all = append(all, 0, byte(i))
	}
	f.Add(append(all, 255, 1, 5, 1, 6, 3, 7, 255, 0, 5))
	ctx := context.Background()
	s := newTestStore(f, StoreOptions{MaxOpenRepos: 1})
	key := newKey(f)
	other := syntax.DID("did:plc:fuzzmstother")
	createOnly(f, s, other, key)
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 512 {
			return
		}
		did := syntax.DID(fmt.Sprintf("did:plc:fuzzmst%d", fuzzRepoSeq.Add(1)))
		createOnly(t, s, did, key)
		defer s.Delete(ctx, did)
		model := map[string][]byte{}
		var batch []WriteOp
		commits := 0
		commit := func() {
			if len(batch) == 0 {
				return
			}
			commits++
			if commits%3 == 0 { // evict: the next open loads the tree from disk
				r, err := s.Repo(ctx, other)
				if err != nil {
					t.Fatal(err)
				}
				r.Release()
			}
			r, err := s.Repo(ctx, did)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			if _, err := r.Apply(ctx, WriteRequest{Ops: batch, Signer: key, DeferSync: true}); err != nil {
				t.Fatalf("apply %d ops: %v", len(batch), err)
			}
			for _, op := range batch {
				path := op.Collection.String() + "/" + op.RKey.String()
				if op.Action == ActionDelete {
					delete(model, path)
				} else {
					model[path] = op.Record
				}
			}
			batch = nil
			checkAgainstModel(t, r, model)
		}
		pending := map[string]bool{} // paths written in the open batch (one op per path per commit)
		for i := 0; i+1 < len(ops); i += 2 {
			if ops[i] == 255 {
				commit()
				clear(pending)
				i--
				continue
			}
			path := mstKeys[int(ops[i+1])%len(mstKeys)]
			col, rkey, _ := cutPath(path)
			_, exists := model[path]
			if pending[path] {
				commit()
				clear(pending)
				_, exists = model[path]
			}
			switch ops[i] % 4 {
			case 0, 1: // write: create or update as the model says
				act := ActionCreate
				if exists {
					act = ActionUpdate
				}
				batch = append(batch, WriteOp{Action: act, Collection: col, RKey: rkey, Record: recordCBOR(t, fmt.Sprintf("v%d-%d", i, ops[i]))})
				pending[path] = true
			case 2: // delete
				if exists {
					batch = append(batch, WriteOp{Action: ActionDelete, Collection: col, RKey: rkey})
					pending[path] = true
				} else {
					impossible(t, s, did, WriteOp{Action: ActionDelete, Collection: col, RKey: rkey}, key)
				}
			case 3: // create of an existing key: impossible; update of a missing one: a create (putRecord's rule)
				if exists {
					impossible(t, s, did, WriteOp{Action: ActionCreate, Collection: col, RKey: rkey, Record: recordCBOR(t, "dup")}, key)
				} else {
					batch = append(batch, WriteOp{Action: ActionUpdate, Collection: col, RKey: rkey, Record: recordCBOR(t, "put")})
					pending[path] = true
				}
			}
		}
		commit()
	})
}

func cutPath(path string) (syntax.NSID, syntax.RecordKey, bool) {
	i := bytes.IndexByte([]byte(path), '/')
	return syntax.NSID(path[:i]), syntax.RecordKey(path[i+1:]), true
}

// impossible applies a write that must fail (alone, outside the open batch) and checks the head did not move.
func impossible(t *testing.T, s *Store, did syntax.DID, op WriteOp, key atcrypto.PrivateKey) {
	before := headOf(t, s, did)
	r, err := s.Repo(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(context.Background(), WriteRequest{Ops: []WriteOp{op}, Signer: key, DeferSync: true})
	r.Release()
	if err == nil {
		t.Fatalf("impossible %s of %s/%s succeeded", op.Action, op.Collection, op.RKey)
	}
	if after := headOf(t, s, did); after != before {
		t.Fatalf("a failed write moved the head")
	}
}

// checkAgainstModel: the repository's data root is indigo's root for the model's keys, and every key of the
// key space is found or not found as the model says.
func checkAgainstModel(t *testing.T, r *Repo, model map[string][]byte) {
	ctx := context.Background()
	tree := mst.NewEmptyTree()
	for _, path := range slices.Sorted(maps.Keys(model)) {
		if _, err := tree.Insert([]byte(path), cidOf(t, model[path])); err != nil {
			t.Fatal(err)
		}
	}
	want, err := tree.RootCID()
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Data != *want {
		t.Fatalf("data root %s, indigo's tree of the same %d keys %s", h.Data, len(model), want)
	}
	for _, path := range mstKeys {
		col, rkey, _ := cutPath(path)
		c, data, err := r.GetRecord(ctx, col.String(), rkey.String())
		rec, ok := model[path]
		switch {
		case ok && err != nil:
			t.Fatalf("%s: %v", path, err)
		case ok && (!bytes.Equal(data, rec) || c != cidOf(t, rec)):
			t.Fatalf("%s: wrong record", path)
		case !ok && !errors.Is(err, ErrRecordNotFound):
			t.Fatalf("%s: deleted or never written, got %v", path, err)
		}
	}
}
