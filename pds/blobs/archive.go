package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/blobstore"
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
	_, promoted, err = b.Save(ctx, r, did, tmp, mimeType)
	return err
}
