package testpds

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/pdsgo/pds/pds/blobstore"
)

// Blobs: upload and fetch, blob-shaped test data, the files of the disk store.

// RandomBytes is n bytes of a deterministic random stream (seed).
func RandomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// PNG is n bytes that start like a PNG image.
func PNG(seed uint64, n int) []byte {
	b := RandomBytes(seed, n)
	copy(b, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	return b
}

// HideLength makes a body whose length the HTTP client does not know (sent chunked).
type HideLength struct{ R io.Reader }

func (h HideLength) Read(p []byte) (int, error) { return h.R.Read(p) }

// UploadBlob posts body to uploadBlob (contentType "" sends none).
func UploadBlob(t testing.TB, p *PDS, token, contentType string, body io.Reader) *Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/xrpc/com.atproto.repo.uploadBlob", body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.Do(req, token)
}

// BlobRef is the "blob" of an uploadBlob answer.
type BlobRef struct {
	Type     string            `json:"$type"`
	Ref      map[string]string `json:"ref"`
	MimeType string            `json:"mimeType"`
	Size     int64             `json:"size"`
}

// CID is the blob's CID.
func (b BlobRef) CID() string { return b.Ref["$link"] }

// UploadBlobOK uploads data and checks the answer (type, CID, size) before returning its blob ref.
func UploadBlobOK(t testing.TB, p *PDS, token, contentType string, data []byte) BlobRef {
	t.Helper()
	r := UploadBlob(t, p, token, contentType, bytes.NewReader(data))
	if r.Status != http.StatusOK {
		t.Fatalf("uploadBlob: %s", r)
	}
	var out struct{ Blob BlobRef }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Blob.Type != "blob" || out.Blob.CID() != blobstore.CIDOf(data).String() || out.Blob.Size != int64(len(data)) {
		t.Fatalf("uploadBlob answered %s for %d bytes with CID %s", r.Body, len(data), blobstore.CIDOf(data))
	}
	return out.Blob
}

// GetBlob calls sync.getBlob with extra request headers.
func GetBlob(t testing.TB, p *PDS, did, cid string, header http.Header, token string) *Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL+"/xrpc/com.atproto.sync.getBlob?"+url.Values{"did": {did}, "cid": {cid}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return p.Do(req, token)
}

// ImagePost is a Post embedding the images refs.
func ImagePost(text string, refs ...BlobRef) map[string]any {
	images := []any{}
	for _, r := range refs {
		images = append(images, map[string]any{"alt": "", "image": r})
	}
	p := Post(text)
	p["embed"] = map[string]any{"$type": "app.bsky.embed.images", "images": images}
	return p
}

// CreateRecord creates a record in collection as a (rkey chosen by the server).
func CreateRecord(t testing.TB, p *PDS, a *Account, collection string, record map[string]any) *Response {
	t.Helper()
	return p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": a.DID, "collection": collection, "record": record}, a.AccessJwt)
}

// BlobFiles lists the blob files of the disk store (excluding temporary uploads).
func BlobFiles(t testing.TB, p *PDS) []string {
	t.Helper()
	var out []string
	root := p.Config.BlobstoreDisk
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path == p.Config.BlobstoreDiskTmp {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	return out
}
