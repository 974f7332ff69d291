package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// HasBytes reports whether the blob's bytes are stored (false, nil when they are not).
func (b *Service) HasBytes(ctx context.Context, did syntax.DID, c cid.Cid) (bool, error) {
	_, err := b.store.Stat(ctx, did, c)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Open reads a stored blob.
func (b *Service) Open(ctx context.Context, did syntax.DID, c cid.Cid) (io.ReadCloser, error) {
	return b.store.Open(ctx, did, c)
}

// StoreArchived stores one blob of an account archive under its declared type, checking its content against
// its CID. Errors opening the account's repository are the repo's (the caller maps them).
func (b *Service) StoreArchived(ctx context.Context, did syntax.DID, c cid.Cid, mimeType string, body io.Reader, size int64) error {
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	tmp, err := blobstore.Put(ctx, b.store, body, size, -1)
	if err != nil {
		return fmt.Errorf("blob %s: %w", c, err)
	}
	promoted := false
	defer func() {
		if !promoted {
			b.store.DeleteTemp(context.WithoutCancel(ctx), tmp.Key)
		}
	}()
	if !tmp.CID.Equals(c) {
		return xrpc.InvalidRequest("Invalid account archive: blob %s has the content of %s", c, tmp.CID)
	}
	r, err := b.repos.Repo(ctx, did)
	if err != nil {
		return err
	}
	defer r.Release()
	now := time.Now()
	release, err := b.Mark(ctx, did, now.Add(b.expiry))
	if err != nil {
		return err
	}
	defer release()
	unlock := b.Lock(did, c)
	defer unlock()
	dctx := context.WithoutCancel(ctx)
	row, err := r.BeginBlob(dctx, repo.BlobRef{CID: c, MimeType: mimeType, Size: tmp.Size}, now)
	if err != nil {
		return err
	}
	if n, err := b.store.Stat(dctx, did, c); row.State != repo.BlobReady || err != nil || n != tmp.Size {
		if err := b.store.Promote(dctx, tmp.Key, did, c); err != nil {
			return err
		}
		promoted = true
	}
	_, err = r.FinishBlob(dctx, c, now)
	return err
}
