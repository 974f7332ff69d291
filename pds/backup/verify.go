package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
)

// Report is what Verify checked.
type Report struct {
	Round    string
	Seq      int64
	Accounts int // repositories verified
	Records  int
	Blobs    int
	// Signups: repositories without an account row (a signup in progress during the round; the server's
	// recovery removes such a repository at start), not verified.
	Signups int
}

// Verify restores round id into a temporary directory and checks it as a relay would: every object decrypts
// and has the content its manifest names; every repository's commit is signed by the account's signing key
// (account.sqlite), is at the manifest's rev, and its MST gives the commit's data root and exactly the records
// of the record index; every blob the repository lists as stored is in the blob store with its CID.
func (b *Backup) Verify(ctx context.Context, id string, progress Progress) (*Report, error) {
	dir, err := os.MkdirTemp("", "pds-backup-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := b.Restore(ctx, id, dir, progress)
	if err != nil {
		return nil, err
	}
	rep := &Report{Round: m.ID, Seq: m.Seq}
	accounts, err := accountstore.Open(ctx, filepath.Join(dir, FileAccounts))
	if err != nil {
		return nil, fmt.Errorf("account.sqlite: %w", err)
	}
	defer accounts.Close()
	repos, err := repo.OpenStore(filepath.Join(dir, "actors"), repo.StoreOptions{})
	if err != nil {
		return nil, err
	}
	defer repos.Close()
	disk, err := blobstore.NewDisk(filepath.Join(dir, "blobs"), "")
	if err != nil {
		return nil, err
	}
	dids := make([]string, 0, len(m.Accounts))
	for did := range m.Accounts {
		dids = append(dids, did)
	}
	sort.Strings(dids)
	for _, did := range dids {
		n, err := verifyAccount(ctx, accounts, repos, disk, dir, did, m.Accounts[did])
		if errors.Is(err, accountstore.ErrNotFound) {
			rep.Signups++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", did, err)
		}
		rep.Accounts++
		rep.Records += n
		rep.Blobs += len(m.Accounts[did].Blobs)
	}
	return rep, nil
}

// ErrInvalidRepo is a repository that does not verify.
var ErrInvalidRepo = errors.New("backup: repository does not verify")

func verifyAccount(ctx context.Context, accounts *accountstore.Store, repos *repo.Store, disk *blobstore.Disk, dir, did string, ref AccountRef) (int, error) {
	a, err := accounts.AccountByDID(ctx, syntax.DID(did))
	if err != nil {
		return 0, err
	}
	key, err := atcrypto.ParsePrivateBytesK256(a.SigningKey)
	if err != nil {
		return 0, fmt.Errorf("%w: signing key: %v", ErrInvalidRepo, err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return 0, err
	}
	d := syntax.DID(did)
	state, err := repo.ReadSnapshot(ctx, repo.PathIn(filepath.Join(dir, "actors"), d))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidRepo, err)
	}
	r, err := repos.Repo(ctx, d)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidRepo, err)
	}
	defer r.Release()
	var car bytes.Buffer
	if err := r.WriteCAR(ctx, &car, ""); err != nil {
		return 0, fmt.Errorf("%w: export: %v", ErrInvalidRepo, err)
	}
	commit, rp, err := atrepo.LoadRepoFromCAR(ctx, &car)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidRepo, err)
	}
	if commit.DID != did || commit.Rev != ref.Rev {
		return 0, fmt.Errorf("%w: commit of %s at rev %s, the manifest says rev %s", ErrInvalidRepo, commit.DID, commit.Rev, ref.Rev)
	}
	if err := commit.VerifySignature(pub); err != nil {
		return 0, fmt.Errorf("%w: commit signature: %v", ErrInvalidRepo, err)
	}
	leaves := map[string]cid.Cid{}
	tree := mst.NewEmptyTree()
	if err := rp.MST.Walk(func(k []byte, v cid.Cid) error {
		leaves[string(k)] = v
		_, err := tree.Insert(k, v)
		return err
	}); err != nil {
		return 0, fmt.Errorf("%w: MST: %v", ErrInvalidRepo, err)
	}
	root, err := tree.RootCID()
	if err != nil {
		return 0, err
	}
	if *root != commit.Data {
		return 0, fmt.Errorf("%w: the MST's root is %s, the commit says %s", ErrInvalidRepo, root, commit.Data)
	}
	// The record index (listRecords, getRecord) must be the tree's leaves.
	cols, err := r.Collections(ctx)
	if err != nil {
		return 0, err
	}
	indexed := 0
	for _, col := range cols {
		cursor := ""
		for {
			recs, next, err := r.ListRecords(ctx, col, 100, cursor, false)
			if err != nil {
				return 0, err
			}
			for _, rec := range recs {
				if v, ok := leaves[col+"/"+rec.RKey]; !ok || !v.Equals(rec.CID) {
					return 0, fmt.Errorf("%w: record index has %s/%s = %s, the MST %s", ErrInvalidRepo, col, rec.RKey, rec.CID, v)
				}
				indexed++
			}
			if next == "" || len(recs) == 0 {
				break
			}
			cursor = next
		}
	}
	if indexed != len(leaves) {
		return 0, fmt.Errorf("%w: record index has %d records, the MST %d", ErrInvalidRepo, indexed, len(leaves))
	}
	for _, c := range state.Blobs {
		bc, err := cid.Decode(c)
		if err != nil {
			return 0, fmt.Errorf("%w: blob %q", ErrInvalidRepo, c)
		}
		if _, err := disk.Stat(ctx, syntax.DID(did), bc); err != nil {
			return 0, fmt.Errorf("%w: blob %s is not in the backup: %v", ErrInvalidRepo, c, err)
		}
	}
	return len(leaves), nil
}
