package pds_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/blobstore"
)

// ---- helpers ----

// blMP4 is n bytes that start like an MP4 video.
func blMP4(seed uint64, n int) []byte {
	b := testpds.RandomBytes(seed, n)
	copy(b, "\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
	return b
}

func blRKey(t testing.TB, r *testpds.Response) string {
	t.Helper()
	uri, _ := r.JSON()["uri"].(string)
	if uri == "" {
		t.Fatalf("no uri in %s", r)
	}
	return uri[strings.LastIndex(uri, "/")+1:]
}

func blHasFile(t testing.TB, p *testpds.PDS, cid string) bool {
	for _, f := range testpds.BlobFiles(t, p) {
		if filepath.Base(f) == cid {
			return true
		}
	}
	return false
}

// blEventually polls cond (the blob collector works in the background) for up to 15 s.
func blEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- tests ----

func TestBlobUploadAndGet(t *testing.T) {
	const limit = 21_000_000
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_BLOB_UPLOAD_LIMIT": fmt.Sprint(limit)}})
	alice := p.CreateAccount("alice")

	// The content decides the type: a PNG declared as JPEG is stored as PNG.
	png := testpds.PNG(1, 5000)
	ref := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/jpeg", png)
	if ref.MimeType != "image/png" {
		t.Fatalf("sniffed type %q, want image/png", ref.MimeType)
	}
	// Unknown content keeps the declared type (without parameters).
	if r := testpds.UploadBlobOK(t, p, alice.AccessJwt, "Application/X-Custom; v=1", testpds.RandomBytes(2, 100)); r.MimeType != "application/x-custom" {
		t.Fatalf("declared type %q, want application/x-custom", r.MimeType)
	}
	if r := testpds.UploadBlobOK(t, p, alice.AccessJwt, "*/*", testpds.RandomBytes(3, 100)); r.MimeType != "application/octet-stream" {
		t.Fatalf("wildcard declared type gave %q", r.MimeType)
	}
	testpds.WantStatus(t, testpds.UploadBlob(t, p, alice.AccessJwt, "", bytes.NewReader(png)), 400, "InvalidRequest")
	testpds.WantStatus(t, testpds.UploadBlob(t, p, "", "image/png", bytes.NewReader(png)), 401, "AuthMissing")

	// Empty.
	empty := testpds.UploadBlobOK(t, p, alice.AccessJwt, "application/octet-stream", nil)
	if empty.CID() != "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" {
		t.Fatalf("empty blob %s", empty.CID())
	}

	// The same bytes twice are stored once.
	again := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", png)
	if again.CID() != ref.CID() {
		t.Fatal("same bytes, different CID")
	}
	n := 0
	for _, f := range testpds.BlobFiles(t, p) {
		if filepath.Base(f) == ref.CID() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d files for one blob uploaded twice", n)
	}

	// An upload nobody references is not published.
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, ref.CID(), nil, ""), 404, "BlobNotFound")

	// Large: 20 MB, streamed both ways, chunked on the way in.
	large := testpds.RandomBytes(4, 20_000_000)
	r := testpds.UploadBlob(t, p, alice.AccessJwt, "application/x-large", testpds.HideLength{R: bytes.NewReader(large)})
	if r.Status != 200 || !strings.Contains(string(r.Body), blobstore.CIDOf(large).String()) {
		t.Fatalf("large upload: %s", r)
	}
	largeRef := testpds.BlobRef{Type: "blob", Ref: map[string]string{"$link": blobstore.CIDOf(large).String()}, MimeType: "application/x-large", Size: int64(len(large))}
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "com.example.attachment", map[string]any{"file": largeRef}), 200, "")
	g := testpds.GetBlob(t, p, alice.DID, largeRef.CID(), nil, "")
	if g.Status != 200 || sha256.Sum256(g.Body) != sha256.Sum256(large) {
		t.Fatalf("large getBlob: %d, %d bytes", g.Status, len(g.Body))
	}
	h := g.Header
	for k, want := range map[string]string{
		"Content-Type":            "application/x-large",
		"Content-Length":          "20000000",
		"Etag":                    `"` + largeRef.CID() + `"`,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Accept-Ranges":           "bytes",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("getBlob %s = %q, want %q", k, got, want)
		}
	}

	// Range requests (video players), suffix ranges, conditional requests, HEAD.
	g = testpds.GetBlob(t, p, alice.DID, largeRef.CID(), http.Header{"Range": {"bytes=1000000-1999999"}}, "")
	if g.Status != 206 || g.Header.Get("Content-Range") != "bytes 1000000-1999999/20000000" || !bytes.Equal(g.Body, large[1000000:2000000]) {
		t.Fatalf("range: %d %q %d bytes", g.Status, g.Header.Get("Content-Range"), len(g.Body))
	}
	g = testpds.GetBlob(t, p, alice.DID, largeRef.CID(), http.Header{"Range": {"bytes=-100"}}, "")
	if g.Status != 206 || !bytes.Equal(g.Body, large[len(large)-100:]) {
		t.Fatalf("suffix range: %d", g.Status)
	}
	g = testpds.GetBlob(t, p, alice.DID, largeRef.CID(), http.Header{"Range": {"bytes=30000000-"}}, "")
	if g.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", g.Status)
	}
	g = testpds.GetBlob(t, p, alice.DID, largeRef.CID(), http.Header{"If-None-Match": {`"` + largeRef.CID() + `"`}}, "")
	if g.Status != http.StatusNotModified || len(g.Body) != 0 {
		t.Fatalf("If-None-Match: %d", g.Status)
	}
	req, _ := http.NewRequest(http.MethodHead, p.URL+"/xrpc/com.atproto.sync.getBlob?did="+alice.DID+"&cid="+largeRef.CID(), nil)
	if hr := p.Do(req, ""); hr.Status != 200 || hr.Header.Get("Content-Length") != "20000000" || len(hr.Body) != 0 {
		t.Fatalf("HEAD: %d %q", hr.Status, hr.Header.Get("Content-Length"))
	}

	// Over the limit: 413, whether the length is announced or not, and nothing is kept.
	over := testpds.RandomBytes(5, limit+1)
	testpds.WantStatus(t, testpds.UploadBlob(t, p, alice.AccessJwt, "application/x-large", bytes.NewReader(over)), 413, "PayloadTooLarge")
	testpds.WantStatus(t, testpds.UploadBlob(t, p, alice.AccessJwt, "application/x-large", testpds.HideLength{R: bytes.NewReader(over)}), 413, "PayloadTooLarge")
	testpds.UploadBlobOK(t, p, alice.AccessJwt, "application/x-large", over[:limit]) // exactly the limit is fine
	if tmp, _ := os.ReadDir(p.Config.BlobstoreDiskTmp); len(tmp) != 0 {
		t.Fatalf("%d temporary files left after refused uploads", len(tmp))
	}

	// Bad requests.
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, "not-a-cid", nil, ""), 400, "InvalidRequest")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, blobstore.CIDOf([]byte("unknown")).String(), nil, ""), 404, "BlobNotFound")
	testpds.WantStatus(t, testpds.GetBlob(t, p, "did:plc:nobodyhereatallxxxxxxxxx", ref.CID(), nil, ""), 400, "RepoNotFound")
	bob := p.CreateAccount("bob")
	testpds.WantStatus(t, testpds.GetBlob(t, p, bob.DID, largeRef.CID(), nil, ""), 404, "BlobNotFound") // blobs belong to an account
}

func TestBlobReferences(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	png := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(10, 3000))
	video := testpds.UploadBlobOK(t, p, alice.AccessJwt, "video/mp4", blMP4(11, 4000))
	big := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(12, 2_000_001)) // images: maxSize 2,000,000
	if video.MimeType != "video/mp4" {
		t.Fatalf("video sniffed as %q", video.MimeType)
	}

	// A blob that does not exist, or that another account uploaded.
	ghost := testpds.BlobRef{Type: "blob", Ref: map[string]string{"$link": blobstore.CIDOf([]byte("ghost")).String()}, MimeType: "image/png", Size: 5}
	r := testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("ghost", ghost))
	testpds.WantStatus(t, r, 400, "BlobNotFound")
	if !strings.Contains(r.JSON()["message"].(string), ghost.CID()) {
		t.Fatalf("message does not name the blob: %s", r)
	}
	testpds.WantStatus(t, testpds.CreateRecord(t, p, bob, "app.bsky.feed.post", testpds.ImagePost("not mine", png)), 400, "BlobNotFound")

	// The stored blob's real type and size are what count.
	lie := png
	lie.MimeType = "image/jpeg"
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("lie", lie)), 400, "InvalidMimeType")
	lie = png
	lie.Size = 10
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("lie", lie)), 400, "InvalidSize")
	// A video declared as what it is breaks the images lexicon's accept; one declared as an image is a lie.
	r = testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("video", video))
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "mimetype") {
		t.Fatalf("accept violation message: %s", r)
	}
	lie = video
	lie.MimeType = "image/png"
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("video as image", lie)), 400, "InvalidMimeType")
	// maxSize.
	r = testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("big", big))
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "size") {
		t.Fatalf("maxSize violation message: %s", r)
	}
	// applyWrites goes through the same checks.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.applyWrites", map[string]any{"repo": alice.DID, "writes": []any{
		map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": testpds.ImagePost("ok", png)},
		map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": testpds.ImagePost("ghost", ghost)},
	}}, alice.AccessJwt), 400, "BlobNotFound")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, png.CID(), nil, ""), 404, "BlobNotFound") // the refused batch linked nothing

	// A good post with an image and a video post: both blobs are served from then on.
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("hello", png)), 200, "")
	vp := testpds.Post("a video")
	vp["embed"] = map[string]any{"$type": "app.bsky.embed.video", "video": video}
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", vp), 200, "")
	for _, b := range []testpds.BlobRef{png, video} {
		g := testpds.GetBlob(t, p, alice.DID, b.CID(), nil, "")
		if g.Status != 200 || g.Header.Get("Content-Type") != b.MimeType || int64(len(g.Body)) != b.Size {
			t.Fatalf("getBlob %s: %d %q", b.CID(), g.Status, g.Header.Get("Content-Type"))
		}
	}
}

func TestBlobGarbageCollection(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_BLOB_GC_GRACE_MS": "0"}})
	alice := p.CreateAccount("alice")
	shared := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(20, 2000))
	only := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(21, 2000))
	a := blRKey(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("a", shared)))
	b := blRKey(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("b", shared, only)))
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, only.CID(), nil, ""), 200, "")

	// Deleting b drops the last reference to "only", not to "shared" (a still uses it).
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": b}, alice.AccessJwt), 200, "")
	blEventually(t, "the unreferenced blob is deleted", func() bool { return !blHasFile(t, p, only.CID()) })
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, only.CID(), nil, ""), 404, "BlobNotFound")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, shared.CID(), nil, ""), 200, "")
	// Collected means gone from the metadata too: it can not be referenced again without a new upload.
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("again", only)), 400, "BlobNotFound")

	// Updated away: a profile changes its avatar.
	av1 := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(22, 1000))
	av2 := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(23, 1000))
	profile := func(avatar testpds.BlobRef) map[string]any {
		return map[string]any{"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self",
			"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": avatar}}
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.putRecord", profile(av1), alice.AccessJwt), 200, "")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.putRecord", profile(av2), alice.AccessJwt), 200, "")
	blEventually(t, "the replaced avatar is deleted", func() bool { return !blHasFile(t, p, av1.CID()) })
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, av2.CID(), nil, ""), 200, "")

	// The last reference goes.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": a}, alice.AccessJwt), 200, "")
	blEventually(t, "the shared blob is deleted", func() bool { return !blHasFile(t, p, shared.CID()) })
	if files := testpds.BlobFiles(t, p); len(files) != 1 || filepath.Base(files[0]) != av2.CID() {
		t.Fatalf("blob files left: %v, want only the current avatar", files)
	}
}

func TestBlobGracePeriodAllowsReference(t *testing.T) {
	p := testpds.Start(t, testpds.Options{}) // default grace: 1 hour
	alice := p.CreateAccount("alice")
	img := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(30, 2000))
	rkey := blRKey(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("draft", img)))
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": rkey}, alice.AccessJwt), 200, "")
	// Unreferenced: no longer published, but kept for the grace period...
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 404, "BlobNotFound")
	if !blHasFile(t, p, img.CID()) {
		t.Fatal("blob deleted before the grace period")
	}
	// ...so the client can use it again without uploading it again.
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("final", img)), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 200, "")
}

func TestBlobTemporaryUploadsExpire(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_BLOB_TEMP_EXPIRY_MS": "0"}})
	alice := p.CreateAccount("alice")
	img := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(40, 2000))
	blEventually(t, "the unreferenced upload expires", func() bool { return !blHasFile(t, p, img.CID()) })
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("late", img)), 400, "BlobNotFound")
	// Uploading it again works (and it expires again).
	testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(40, 2000))
	blEventually(t, "the second upload expires too", func() bool { return !blHasFile(t, p, img.CID()) })
}

func TestListBlobsAndMissingBlobs(t *testing.T) {
	ctx := context.Background()
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	var cids []string
	for i := range 5 {
		img := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(uint64(50+i), 1000))
		cids = append(cids, img.CID())
		testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost(fmt.Sprint(i), img)), 200, "")
	}
	rev := p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {alice.DID}}, "").JSON()["rev"].(string)
	late := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(60, 1000))
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("late", late)), 200, "")
	testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(61, 1000)) // unreferenced: not listed

	listAll := func(params url.Values) []string {
		var out []string
		for pages := 0; ; pages++ {
			r := p.Query("com.atproto.sync.listBlobs", params, "")
			testpds.WantStatus(t, r, 200, "")
			var page struct {
				CIDs   []string `json:"cids"`
				Cursor string   `json:"cursor"`
			}
			json.Unmarshal(r.Body, &page)
			if len(page.CIDs) > 2 || pages > 10 {
				t.Fatalf("page of %d with limit 2", len(page.CIDs))
			}
			out = append(out, page.CIDs...)
			if page.Cursor == "" {
				return out
			}
			params.Set("cursor", page.Cursor)
		}
	}
	all := listAll(url.Values{"did": {alice.DID}, "limit": {"2"}})
	if len(all) != 6 {
		t.Fatalf("listBlobs: %d cids, want 6", len(all))
	}
	since := listAll(url.Values{"did": {alice.DID}, "limit": {"2"}, "since": {rev}})
	if len(since) != 1 || since[0] != late.CID() {
		t.Fatalf("listBlobs since %s = %v, want only %s", rev, since, late.CID())
	}
	testpds.WantStatus(t, p.Query("com.atproto.sync.listBlobs", url.Values{"did": {"did:plc:nobodyhereatallxxxxxxxxx"}}, ""), 400, "RepoNotFound")

	// Records imported with the blobs not there yet (a migration).
	var missing [][]byte
	records := map[string]json.RawMessage{}
	for i := range 5 {
		data := testpds.PNG(uint64(70+i), 700)
		missing = append(missing, data)
		ref := testpds.BlobRef{Type: "blob", Ref: map[string]string{"$link": blobstore.CIDOf(data).String()}, MimeType: "image/png", Size: 700}
		raw, _ := json.Marshal(testpds.ImagePost(fmt.Sprint("imported ", i), ref))
		records[fmt.Sprintf("3kimport%05d", i)] = raw
	}
	if err := p.Server.CommitImportedRecordsForTest(ctx, alice.DID, "app.bsky.feed.post", records); err != nil {
		t.Fatal(err)
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.listMissingBlobs", nil, ""), 401, "AuthMissing")
	listMissing := func() map[string]string {
		out := map[string]string{}
		params := url.Values{"limit": {"2"}}
		for pages := 0; pages < 10; pages++ {
			r := p.Query("com.atproto.repo.listMissingBlobs", params, alice.AccessJwt)
			testpds.WantStatus(t, r, 200, "")
			var page struct {
				Blobs []struct {
					CID       string `json:"cid"`
					RecordURI string `json:"recordUri"`
				} `json:"blobs"`
				Cursor string `json:"cursor"`
			}
			json.Unmarshal(r.Body, &page)
			for _, b := range page.Blobs {
				out[b.CID] = b.RecordURI
			}
			if page.Cursor == "" {
				return out
			}
			params.Set("cursor", page.Cursor)
		}
		t.Fatal("listMissingBlobs does not end")
		return nil
	}
	got := listMissing()
	if len(got) != 5 {
		t.Fatalf("listMissingBlobs: %d, want 5: %v", len(got), got)
	}
	first := blobstore.CIDOf(missing[0]).String()
	if !strings.HasPrefix(got[first], "at://"+alice.DID+"/app.bsky.feed.post/3kimport") {
		t.Fatalf("recordUri %q", got[first])
	}
	// Uploading a missing blob fills the gap; it is referenced, so it is permanent and served at once.
	testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", missing[0])
	if got := listMissing(); len(got) != 4 || got[first] != "" {
		t.Fatalf("after uploading one: %v", got)
	}
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, first, nil, ""), 200, "")
	if all := listAll(url.Values{"did": {alice.DID}, "limit": {"2"}}); len(all) != 11 {
		t.Fatalf("listBlobs lists every referenced blob, present or not: %d, want 11", len(all))
	}
}

func TestBlobAccountStates(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	img := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(80, 1500))
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("hi", img)), 200, "")

	// Deactivated: hidden from others, visible to the owner; uploads still work (migrations upload blobs
	// before the account is activated).
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, alice.AccessJwt), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 400, "RepoDeactivated")
	testpds.WantStatus(t, p.Query("com.atproto.sync.listBlobs", url.Values{"did": {alice.DID}}, ""), 400, "RepoDeactivated")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, alice.AccessJwt), 200, "")
	testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(81, 100))
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", map[string]any{}, alice.AccessJwt), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 200, "")

	// A blob taken down by a moderator: not served, can not be uploaded again or referenced.
	admin := func(body map[string]any) *testpds.Response {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/xrpc/com.atproto.admin.updateSubjectStatus", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", "admin-pass")
		return p.Do(req, "")
	}
	blobSubject := map[string]any{"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.DID, "cid": img.CID()}
	testpds.WantStatus(t, admin(map[string]any{"subject": blobSubject, "takedown": map[string]any{"applied": true, "ref": "spam"}}), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 404, "BlobNotFound")
	testpds.WantStatus(t, testpds.UploadBlob(t, p, alice.AccessJwt, "image/png", bytes.NewReader(testpds.PNG(80, 1500))), 400, "InvalidRequest")
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("again", img)), 400, "BlobNotFound")
	testpds.WantStatus(t, admin(map[string]any{"subject": blobSubject, "takedown": map[string]any{"applied": false}}), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 200, "")

	// A taken-down account's blobs are not served.
	testpds.WantStatus(t, admin(map[string]any{"subject": map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": alice.DID},
		"takedown": map[string]any{"applied": true}}), 200, "")
	testpds.WantStatus(t, testpds.GetBlob(t, p, alice.DID, img.CID(), nil, ""), 400, "RepoTakendown")
}

// TestBlobsOnS3 runs the server on the S3 backend (an in-process S3 server on a loopback socket): upload, serve
// with ranges, collect.
func TestBlobsOnS3(t *testing.T) {
	ctx := context.Background()
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	mc, err := minio.New(strings.TrimPrefix(s3srv.URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("k", "s", ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "pds-blobs", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	p := testpds.Start(t, testpds.Options{Env: map[string]string{
		"PDS_BLOBSTORE_S3_BUCKET":            "pds-blobs",
		"PDS_BLOBSTORE_S3_ENDPOINT":          s3srv.URL,
		"PDS_BLOBSTORE_S3_REGION":            "us-east-1",
		"PDS_BLOBSTORE_S3_FORCE_PATH_STYLE":  "true",
		"PDS_BLOBSTORE_S3_ACCESS_KEY_ID":     "k",
		"PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY": "s",
		"PDS_BLOB_GC_GRACE_MS":               "0",
	}})
	alice := p.CreateAccount("alice")
	data := blMP4(90, 7_000_000) // more than one multipart part
	video := testpds.UploadBlobOK(t, p, alice.AccessJwt, "video/mp4", data)
	vp := testpds.Post("a video")
	vp["embed"] = map[string]any{"$type": "app.bsky.embed.video", "video": video}
	rkey := blRKey(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", vp))
	key := "blocks/" + alice.DID + "/" + video.CID()
	if _, err := mc.StatObject(ctx, "pds-blobs", key, minio.StatObjectOptions{}); err != nil {
		t.Fatalf("blob not at %s in the bucket: %v", key, err)
	}
	g := testpds.GetBlob(t, p, alice.DID, video.CID(), http.Header{"Range": {"bytes=6000000-6000099"}}, "")
	if g.Status != 206 || !bytes.Equal(g.Body, data[6000000:6000100]) {
		t.Fatalf("ranged getBlob from S3: %d, %d bytes", g.Status, len(g.Body))
	}
	g = testpds.GetBlob(t, p, alice.DID, video.CID(), nil, "")
	if g.Status != 200 || !bytes.Equal(g.Body, data) {
		t.Fatalf("getBlob from S3: %d, %d bytes", g.Status, len(g.Body))
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": rkey}, alice.AccessJwt), 200, "")
	blEventually(t, "the blob is deleted from the bucket", func() bool {
		_, err := mc.StatObject(ctx, "pds-blobs", key, minio.StatObjectOptions{})
		return err != nil
	})
	n := 0
	for obj := range mc.ListObjects(ctx, "pds-blobs", minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err == nil {
			n++
		}
	}
	if n != 0 {
		t.Fatalf("%d objects left in the bucket", n)
	}
}
