package repo

import (
	"bytes"
	"context"
	"io"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	gocar "github.com/ipld/go-car"
)

const postNSID = syntax.NSID("app.bsky.feed.post")

func newTestStore(t testing.TB, opts StoreOptions) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newKey(t testing.TB) atcrypto.PrivateKey {
	t.Helper()
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubKey(t testing.TB, k atcrypto.PrivateKey) atcrypto.PublicKey {
	t.Helper()
	p, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func recordCBOR(t testing.TB, text string) []byte {
	t.Helper()
	b, err := atdata.MarshalCBOR(map[string]any{
		"$type":     "app.bsky.feed.post",
		"text":      text,
		"createdAt": "2024-01-01T00:00:00.000Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cidOf(t testing.TB, b []byte) cid.Cid {
	t.Helper()
	c, err := cborPrefix.Sum(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createRepo makes a repository and returns an open handle (released at cleanup).
func createRepo(t testing.TB, s *Store, did syntax.DID, key atcrypto.PrivateKey) (*Repo, *CommitResult) {
	t.Helper()
	ctx := context.Background()
	res, err := s.Create(ctx, did, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	return r, res
}

func create(rkey, text string, t testing.TB) WriteOp {
	return WriteOp{Action: ActionCreate, Collection: postNSID, RKey: syntax.RecordKey(rkey), Record: recordCBOR(t, text)}
}

func update(rkey, text string, t testing.TB) WriteOp {
	return WriteOp{Action: ActionUpdate, Collection: postNSID, RKey: syntax.RecordKey(rkey), Record: recordCBOR(t, text)}
}

func del(rkey string) WriteOp {
	return WriteOp{Action: ActionDelete, Collection: postNSID, RKey: syntax.RecordKey(rkey)}
}

// checkEvent verifies a commit event with indigo's VerifyCommitMessage and asserts what that
// function skips: the CAR root is the commit, the signature, prevData/since chaining, and
// prev on every update/delete.
func checkEvent(t testing.TB, res *CommitResult, prev *Head, pub atcrypto.PublicKey) {
	t.Helper()
	ctx := context.Background()
	ev := res.Event
	if ev == nil {
		t.Fatal("no event")
	}
	if ev.Blobs == nil || len(ev.Blobs) != 0 || ev.Ops == nil {
		t.Fatal("blobs and ops must be non-nil (JSON [] not null)")
	}
	// Round-trip through CBOR, as the outbox and the firehose do.
	var buf bytes.Buffer
	if err := ev.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	var rt comatproto.SyncSubscribeRepos_Commit
	if err := rt.UnmarshalCBOR(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	ev = &rt
	if _, err := atrepo.VerifyCommitMessage(ctx, ev); err != nil {
		t.Fatalf("VerifyCommitMessage: %v", err)
	}
	commit, root, err := atrepo.LoadCommitFromCAR(ctx, bytes.NewReader(ev.Blocks))
	if err != nil {
		t.Fatal(err)
	}
	if *root != cid.Cid(ev.Commit) || *root != res.Commit {
		t.Fatalf("CAR root %s, event commit %s, result commit %s", root, cid.Cid(ev.Commit), res.Commit)
	}
	if err := commit.VerifySignature(pub); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if commit.Rev != ev.Rev || commit.Rev != res.Rev || commit.Data != res.Data || commit.DID != ev.Repo {
		t.Fatal("commit fields disagree with the event")
	}
	if ev.Seq != 0 || ev.TooBig || ev.Rebase || len(ev.Blobs) != 0 {
		t.Fatalf("bad flags: seq %d tooBig %v rebase %v blobs %v", ev.Seq, ev.TooBig, ev.Rebase, ev.Blobs)
	}
	if _, err := syntax.ParseDatetime(ev.Time); err != nil {
		t.Fatal(err)
	}
	if prev == nil {
		if ev.Since != nil || ev.PrevData != nil {
			t.Fatal("first commit must have no since/prevData")
		}
	} else {
		if ev.Since == nil || *ev.Since != prev.Rev {
			t.Fatalf("since %v, want %s", ev.Since, prev.Rev)
		}
		if ev.PrevData == nil || cid.Cid(*ev.PrevData) != prev.Data {
			t.Fatalf("prevData %v, want %s", ev.PrevData, prev.Data)
		}
		if ev.Rev <= prev.Rev {
			t.Fatalf("rev %s not after %s", ev.Rev, prev.Rev)
		}
	}
	for _, op := range ev.Ops {
		switch op.Action {
		case "create":
			if op.Cid == nil || op.Prev != nil {
				t.Fatalf("bad create op %+v", op)
			}
		case "update":
			if op.Cid == nil || op.Prev == nil || *op.Cid == *op.Prev {
				t.Fatalf("bad update op %+v", op)
			}
		case "delete":
			if op.Cid != nil || op.Prev == nil {
				t.Fatalf("bad delete op %+v", op)
			}
		default:
			t.Fatalf("bad action %q", op.Action)
		}
	}
	// Every block in the CAR must be there for a reason: no duplicates.
	cr, err := gocar.NewCarReader(bytes.NewReader(ev.Blocks))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[cid.Cid]bool{}
	for {
		b, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[b.Cid()] {
			t.Fatalf("duplicate block %s", b.Cid())
		}
		seen[b.Cid()] = true
	}
}

// expectedBlocks is the exact block set of a head: commit, every MST node, every distinct
// record CID, computed by an independent walk of the tree stored in SQLite.
func expectedBlocks(t testing.TB, r *Repo) map[cid.Cid]bool {
	t.Helper()
	ctx := context.Background()
	head, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := mst.LoadTreeFromStore(ctx, blockSource{r.db}, head.Data)
	if err != nil {
		t.Fatal(err)
	}
	if tree.IsPartial() {
		t.Fatal("stored tree is partial")
	}
	want := map[cid.Cid]bool{head.Commit: true}
	var walk func(n *mst.Node)
	walk = func(n *mst.Node) {
		want[*n.CID] = true
		for _, e := range n.Entries {
			if e.IsValue() {
				want[*e.Value] = true
			}
			if e.Child != nil {
				walk(e.Child)
			}
		}
	}
	walk(tree.Root)
	return want
}

func storedBlocks(t testing.TB, r *Repo) map[cid.Cid]bool {
	t.Helper()
	rows, err := r.db.Query("SELECT cid FROM blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[cid.Cid]bool{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		c, err := cidFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		got[c] = true
	}
	return got
}

func assertExactBlocks(t testing.TB, r *Repo) {
	t.Helper()
	want, got := expectedBlocks(t, r), storedBlocks(t, r)
	var extra, missing []string
	for c := range got {
		if !want[c] {
			extra = append(extra, c.String())
		}
	}
	for c := range want {
		if !got[c] {
			missing = append(missing, c.String())
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		t.Fatalf("block set differs: %d extra %v, %d missing %v", len(extra), extra, len(missing), missing)
	}
}

func mustHead(t testing.TB, r *Repo) *Head {
	t.Helper()
	h, err := r.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &h
}

func isNotFound(err error) bool { return ipld.IsNotFound(err) }
