package blobs

import (
	"context"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
)

// Save records a blob whose bytes are in tmp (blobstore.Put) in did's repository r, under mimeType, and moves
// the bytes into the store: the upload (uploadBlob) and the account archive import both end here. In order:
// the GC mark (a blob no record references is collected after Expiry), the blob's lock (against a deletion of
// the same blob), the metadata row (BeginBlob), the promotion of tmp, and FinishBlob. A blob stored already
// (the same bytes uploaded again) is not rewritten: no copy on S3, and readers of it are undisturbed; anything
// else (new, revived, or bytes lost) is promoted. Past the mark it runs detached from ctx, so a cancelled
// request does not leave the row half-way. promoted reports whether tmp was used up; if not, the caller
// deletes it.
func (b *Service) Save(ctx context.Context, r *repo.Repo, did syntax.DID, tmp *blobstore.Temp, mimeType string) (row *repo.Blob, promoted bool, err error) {
	now := time.Now()
	release, err := b.Mark(ctx, did, now.Add(b.expiry))
	if err != nil {
		return nil, false, err
	}
	defer release()
	unlock := b.Lock(did, tmp.CID)
	defer unlock()
	dctx := context.WithoutCancel(ctx)
	row, err = r.BeginBlob(dctx, repo.BlobRef{CID: tmp.CID, MimeType: mimeType, Size: tmp.Size}, now)
	if err != nil {
		return nil, false, err
	}
	if n, err := b.store.Stat(dctx, did, tmp.CID); row.State != repo.BlobReady || err != nil || n != tmp.Size {
		if err := b.store.Promote(dctx, tmp.Key, did, tmp.CID); err != nil {
			return nil, false, err
		}
		promoted = true
	}
	row, err = r.FinishBlob(dctx, tmp.CID, now)
	return row, promoted, err
}
