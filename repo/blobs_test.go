package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func blobCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	h := sha256.Sum256([]byte(s))
	mh, err := multihash.Encode(h[:], multihash.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// postWithBlobs is a post record whose CBOR embeds the refs, as the server would write it.
func postWithBlobs(t testing.TB, rkey string, action Action, refs ...BlobRef) WriteOp {
	t.Helper()
	images := []any{}
	for _, r := range refs {
		images = append(images, map[string]any{"alt": "", "image": atdata.Blob{Ref: atdata.CIDLink(r.CID), MimeType: r.MimeType, Size: r.Size}})
	}
	rec, err := atdata.MarshalCBOR(map[string]any{
		"$type": "app.bsky.feed.post", "text": rkey, "createdAt": "2024-01-01T00:00:00.000Z",
		"embed": map[string]any{"$type": "app.bsky.embed.images", "images": images},
	})
	if err != nil {
		t.Fatal(err)
	}
	return WriteOp{Action: action, Collection: postNSID, RKey: syntax.RecordKey(rkey), Record: rec, Blobs: refs}
}

// upload records a complete upload of a blob (the bytes would be promoted between Begin and Finish).
func upload(t testing.TB, r *Repo, ref BlobRef, now time.Time) *Blob {
	t.Helper()
	ctx := context.Background()
	if _, err := r.BeginBlob(ctx, ref, now); err != nil {
		t.Fatal(err)
	}
	b, err := r.FinishBlob(ctx, ref.CID, now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func blobState(t testing.TB, r *Repo, c cid.Cid) *Blob {
	t.Helper()
	b, err := r.GetBlob(context.Background(), c)
	if err != nil {
		t.Fatalf("GetBlob %s: %v", c, err)
	}
	return b
}

func TestBlobLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:blobs", key)
	t0 := time.Now()
	img := BlobRef{CID: blobCID(t, "image"), MimeType: "image/png", Size: 1234}

	// An upload is temporary and unreferenced; a second upload with another declared type keeps the first.
	b := upload(t, r, img, t0)
	if !b.Temp || b.Referenced() || b.State != BlobReady || b.Servable() {
		t.Fatalf("fresh upload %+v", b)
	}
	if b2 := upload(t, r, BlobRef{CID: img.CID, MimeType: "image/jpeg", Size: 1234}, t0); b2.MimeType != "image/png" {
		t.Fatalf("re-upload changed the MIME type to %s", b2.MimeType)
	}

	// References are checked against the stored blob before anything changes.
	head, _ := r.Head(ctx)
	apply := func(ops ...WriteOp) (*CommitResult, error) {
		return r.Apply(ctx, WriteRequest{Ops: ops, Signer: key})
	}
	missing := BlobRef{CID: blobCID(t, "never uploaded"), MimeType: "image/png", Size: 1}
	if _, err := apply(postWithBlobs(t, "p0", ActionCreate, missing)); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("missing blob: %v, want ErrBlobNotFound", err)
	}
	var mm *BlobMismatchError
	if _, err := apply(postWithBlobs(t, "p0", ActionCreate, BlobRef{CID: img.CID, MimeType: "image/gif", Size: 1234})); !errors.As(err, &mm) || mm.Field != "mimeType" || mm.Stored != "image/png" {
		t.Fatalf("wrong MIME type: %v", err)
	}
	if _, err := apply(postWithBlobs(t, "p0", ActionCreate, BlobRef{CID: img.CID, MimeType: "image/png", Size: 1})); !errors.As(err, &mm) || mm.Field != "size" {
		t.Fatalf("wrong size: %v", err)
	}
	if h, _ := r.Head(ctx); h != head {
		t.Fatal("a refused write changed the head")
	}

	// Referenced: permanent.
	res, err := apply(postWithBlobs(t, "p1", ActionCreate, img), postWithBlobs(t, "p2", ActionCreate, img))
	if err != nil {
		t.Fatal(err)
	}
	if b := blobState(t, r, img.CID); b.Temp || !b.Referenced() || !b.Servable() {
		t.Fatalf("referenced blob %+v", b)
	}
	if cids, _, _ := r.ListBlobs(ctx, "", "", 10); len(cids) != 1 || cids[0] != img.CID.String() {
		t.Fatalf("ListBlobs = %v", cids)
	}
	if _, _, err := r.ListBlobs(ctx, res.Rev, "", 10); err != nil {
		t.Fatal(err)
	}

	// One of two references goes: still referenced, no GC work.
	hookCalls := 0
	hook := func(context.Context) error { hookCalls++; return nil }
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{del("p1")}, Signer: key, OnBlobsUnreferenced: hook}); err != nil {
		t.Fatal(err)
	}
	if b := blobState(t, r, img.CID); !b.Referenced() || hookCalls != 0 {
		t.Fatalf("blob with a remaining reference: %+v, hook calls %d", b, hookCalls)
	}

	// Moving the only reference to another record in the same commit keeps it referenced.
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{del("p2"), postWithBlobs(t, "p3", ActionCreate, img)}, Signer: key, OnBlobsUnreferenced: hook}); err != nil {
		t.Fatal(err)
	}
	if b := blobState(t, r, img.CID); !b.Referenced() || hookCalls != 0 {
		t.Fatalf("blob moved to another record: %+v, hook calls %d", b, hookCalls)
	}

	// A failing hook aborts the commit: the record and its link stay.
	boom := errors.New("gc queue down")
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{update("p3", "no image", t)}, Signer: key,
		OnBlobsUnreferenced: func(context.Context) error { return boom }}); !errors.Is(err, boom) {
		t.Fatalf("hook error: %v", err)
	}
	if b := blobState(t, r, img.CID); !b.Referenced() {
		t.Fatal("an aborted commit unreferenced the blob")
	}
	if _, _, err := r.GetRecord(ctx, "app.bsky.feed.post", "p3"); err != nil {
		t.Fatal(err)
	}

	// Updated away: unreferenced, stamped, hook called; collected only after the grace period.
	t1 := time.Now()
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{update("p3", "no image", t)}, Signer: key, OnBlobsUnreferenced: hook}); err != nil {
		t.Fatal(err)
	}
	b = blobState(t, r, img.CID)
	if b.Referenced() || b.Temp || hookCalls != 1 || b.Unreferenced.Before(t1.Add(-time.Second)) {
		t.Fatalf("unreferenced blob %+v, hook calls %d", b, hookCalls)
	}
	if next, ok, err := r.NextBlobDue(ctx, time.Hour, time.Minute); err != nil || !ok || next.Sub(b.Unreferenced) != time.Minute {
		t.Fatalf("NextBlobDue = %v %v %v", next, ok, err)
	}
	if got, err := r.ClaimDueBlobs(ctx, time.Now(), time.Hour, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed inside the grace period: %v %v", got, err)
	}
	claimed, err := r.ClaimDueBlobs(ctx, time.Now().Add(2*time.Minute), time.Hour, time.Minute, 10)
	if err != nil || len(claimed) != 1 || !claimed[0].Equals(img.CID) {
		t.Fatalf("ClaimDueBlobs = %v %v", claimed, err)
	}
	// Being deleted: it can not be referenced any more...
	if _, err := apply(postWithBlobs(t, "p4", ActionCreate, img)); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("referencing a blob being deleted: %v", err)
	}
	// ...and a claim that was interrupted is claimed again.
	if again, _ := r.ClaimDueBlobs(ctx, time.Now(), time.Hour, time.Hour, 10); len(again) != 1 {
		t.Fatal("an interrupted deletion is not retried")
	}
	if err := r.FinishBlobDelete(ctx, img.CID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetBlob(ctx, img.CID); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("after FinishBlobDelete: %v", err)
	}
	if _, ok, _ := r.NextBlobDue(ctx, time.Hour, time.Minute); ok {
		t.Fatal("nothing left to collect, yet NextBlobDue has a time")
	}
}

func TestBlobExpiryAndRevival(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:expiry", key)
	now := time.Now()
	tmp := BlobRef{CID: blobCID(t, "temp"), MimeType: "image/png", Size: 10}
	upload(t, r, tmp, now)

	// A crash between BeginBlob and FinishBlob leaves an uploading row: not referenceable, and it expires.
	crashed := BlobRef{CID: blobCID(t, "crashed"), MimeType: "image/png", Size: 10}
	if _, err := r.BeginBlob(ctx, crashed, now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{postWithBlobs(t, "p", ActionCreate, crashed)}, Signer: key}); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("referencing a half-uploaded blob: %v", err)
	}
	if got, _ := r.ClaimDueBlobs(ctx, now.Add(30*time.Minute), time.Hour, 0, 10); len(got) != 0 {
		t.Fatalf("temporary uploads claimed before their expiry (grace does not apply to them): %v", got)
	}
	got, err := r.ClaimDueBlobs(ctx, now.Add(2*time.Hour), time.Hour, 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("expired uploads claimed: %v %v", got, err)
	}

	// An upload of a blob being deleted revives it (the server holds the blob's lock, so the GC is not
	// deleting its bytes right now), and the GC's FinishBlobDelete then leaves it alone.
	if b, err := r.BeginBlob(ctx, tmp, now.Add(2*time.Hour)); err != nil || b.State != BlobUploading {
		t.Fatalf("BeginBlob of a blob being deleted: %+v %v", b, err)
	}
	if _, err := r.FinishBlob(ctx, tmp.CID, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := r.FinishBlobDelete(ctx, tmp.CID); err != nil {
		t.Fatal(err)
	}
	if b := blobState(t, r, tmp.CID); b.State != BlobReady || !b.Temp {
		t.Fatalf("revived blob %+v", b)
	}
}

func TestMissingBlobsAndPaging(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	r, _ := createRepo(t, s, "did:plc:import", key)

	// An import: records reference blobs the account does not have yet.
	var refs []BlobRef
	var ops []WriteOp
	for i := range 7 {
		ref := BlobRef{CID: blobCID(t, fmt.Sprint("img", i)), MimeType: "image/jpeg", Size: int64(100 + i)}
		refs = append(refs, ref)
		ops = append(ops, postWithBlobs(t, fmt.Sprintf("r%d", i), ActionCreate, ref))
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key}); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("without MissingBlobsOK: %v", err)
	}
	first, err := r.Apply(ctx, WriteRequest{Ops: ops[:5], Signer: key, MissingBlobsOK: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(ctx, WriteRequest{Ops: ops[5:], Signer: key, MissingBlobsOK: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := BlobRefsFromCBOR(ops[3].Record); err != nil || len(got) != 1 || got[0] != refs[3] {
		t.Fatalf("BlobRefsFromCBOR = %v %v, want [%v]", got, err, refs[3])
	}
	if exp, imp, err := r.BlobCounts(ctx); err != nil || exp != 7 || imp != 0 {
		t.Fatalf("BlobCounts = %d %d %v", exp, imp, err)
	}
	var all []MissingBlob
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := r.ListMissingBlobs(ctx, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			if pages != 2 {
				t.Fatalf("%d pages of 3 for 7 blobs", pages+1)
			}
			break
		}
		cursor = next
	}
	if len(all) != 7 {
		t.Fatalf("listed %d missing blobs", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].CID >= all[i].CID {
			t.Fatal("missing blobs not in CID order")
		}
	}
	if all[0].Collection != "app.bsky.feed.post" || all[0].RKey == "" {
		t.Fatalf("missing blob without its record: %+v", all[0])
	}

	// Uploading a referenced blob makes it permanent at once (it must never expire).
	b := upload(t, r, refs[2], time.Now())
	if b.Temp || !b.Referenced() {
		t.Fatalf("upload of a referenced blob %+v", b)
	}
	if _, imp, _ := r.BlobCounts(ctx); imp != 1 {
		t.Fatalf("imported = %d", imp)
	}
	if page, _, _ := r.ListMissingBlobs(ctx, "", 100); len(page) != 6 {
		t.Fatalf("%d missing after one upload", len(page))
	}

	// listBlobs: all referenced blobs (present or not), paged; since a rev, only newer records' blobs.
	var listed []string
	cursor = ""
	for {
		page, next, err := r.ListBlobs(ctx, "", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(listed) != 7 {
		t.Fatalf("ListBlobs listed %d", len(listed))
	}
	since, _, err := r.ListBlobs(ctx, first.Rev, "", 100)
	if err != nil || len(since) != 2 {
		t.Fatalf("ListBlobs since the first commit = %v %v, want the 2 newer", since, err)
	}
}
