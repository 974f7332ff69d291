package blobs

import (
	"context"
	"net/http"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// RecordRefs returns the blob references of a record for repo.WriteOp.Blobs, one per distinct CID. The repo
// checks them against the stored blobs when it commits.
func RecordRefs(rec *xrpc.RecordData) []repo.BlobRef {
	var refs []repo.BlobRef
	seen := map[cid.Cid]bool{}
	for _, b := range rec.Blobs() {
		c := cid.Cid(b.Ref)
		if seen[c] {
			continue
		}
		seen[c] = true
		refs = append(refs, repo.BlobRef{CID: c, MimeType: b.MimeType, Size: b.Size})
	}
	return refs
}

// TakendownFunc reports whether one of did's blobs is taken down (the takedown state is not this package's).
type TakendownFunc func(ctx context.Context, did syntax.DID, cid string) (bool, error)

// CheckTakedowns refuses writes that reference a taken-down blob, as if it did not exist.
func CheckTakedowns(ctx context.Context, did syntax.DID, ops []repo.WriteOp, takendown TakendownFunc) error {
	for _, op := range ops {
		for _, ref := range op.Blobs {
			if down, err := takendown(ctx, did, ref.CID.String()); err != nil {
				return err
			} else if down {
				return xrpc.NewError(http.StatusBadRequest, xrpc.NameBlobNotFound, "Could not find blob: %s", ref.CID)
			}
		}
	}
	return nil
}
