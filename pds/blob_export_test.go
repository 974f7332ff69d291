package pds

import (
	"context"
	"encoding/json"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// CommitImportedRecordsForTest writes records the way a repository import does: the blobs they reference need
// not exist (they show up in listMissingBlobs until uploaded). records maps rkeys to record JSON.
func (s *Server) CommitImportedRecordsForTest(ctx context.Context, did, collection string, records map[string]json.RawMessage) error {
	acct, err := s.accounts.AccountByDID(ctx, syntax.DID(did))
	if err != nil {
		return err
	}
	key, err := atcrypto.ParsePrivateBytesK256(acct.SigningKey)
	if err != nil {
		return err
	}
	var ops []repo.WriteOp
	for rkey, raw := range records {
		rec, err := s.prepareRecord(repo.ActionCreate, collection, rkey, raw, xrpc.ValidateSkip)
		if err != nil {
			return err
		}
		ops = append(ops, rec.op)
	}
	if err := s.seq.MarkDirty(ctx, syntax.DID(did)); err != nil {
		return err
	}
	r, err := s.repos.Repo(ctx, syntax.DID(did))
	if err != nil {
		return err
	}
	defer r.Release()
	_, err = r.Apply(ctx, repo.WriteRequest{
		Ops: ops, Signer: key, MissingBlobsOK: true,
		OnCommit: func(res *repo.CommitResult) { s.seq.EnqueueCommit(res.Event) },
	})
	return err
}
