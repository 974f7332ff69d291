package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/repo/car"
)

// Adopting a repository (the takeover of another server's data directory, package takeover) creates an
// account's repository file from the blocks another server kept, keeping its head commit as it is: same commit
// CID, rev and signature, so every commit relays and clients have seen still verifies and the next commit
// chains to it. Unlike Import, nothing is re-signed and no CAR is involved: the source is read block by block.
//
// The head commit must verify with the account's signing key, and the MST under it is walked and checked as an
// import's is (every block's hash against its CID, canonical nodes, key order and heights, every record
// present), so a damaged source repository is refused rather than adopted. Each block and record keeps the rev
// the source recorded for it (getRepo?since= and listBlobs?since= answer as the source would). The file is
// written beside its final name and renamed into place: a failure leaves no repository.

// ErrAdoptInvalid: the source repository is incomplete, damaged, or not signed by the account's key. Wrapped
// with the reason.
var ErrAdoptInvalid = errors.New("invalid repository to adopt")

// AdoptSource is a repository kept by another server.
type AdoptSource interface {
	// Block returns the block c and the rev of the commit that stored it (""if unknown); ok is false when the
	// source does not have it.
	Block(ctx context.Context, c cid.Cid) (data []byte, rev string, ok bool, err error)
	// RecordRev returns the rev of the commit that last wrote the record ("" if unknown: the head's rev is used).
	RecordRev(ctx context.Context, collection, rkey string) (string, error)
}

// AdoptBlob is a blob the account has stored (its bytes are the blob store's business).
type AdoptBlob struct {
	CID       cid.Cid
	MimeType  string
	Size      int64
	CreatedAt time.Time
}

// AdoptOptions are the caller's part of an adoption.
type AdoptOptions struct {
	Commit    cid.Cid            // the head commit
	VerifyKey atcrypto.PublicKey // the account's signing key: the head commit must verify with it
	Blobs     []AdoptBlob        // the account's stored blobs (not temporary uploads)
	Now       time.Time          // zero: time.Now; unreferenced blobs are unreferenced since then
}

// AdoptResult describes an adopted repository.
type AdoptResult struct {
	Head    Head
	Records int64 // records in the repository
	Blocks  int64 // blocks stored: the commit, the MST nodes and the distinct records
	// BlobRefs: distinct blobs the records reference; MissingBlobs of them are not among the stored blobs.
	BlobRefs, MissingBlobs int64
	// Blobs: blob rows written; UnreferencedBlobs of them no record references (collected after the grace period).
	Blobs, UnreferencedBlobs int64
}

// adoptSource checks every block the walker reads against its CID.
type adoptSource struct{ src AdoptSource }

func (a adoptSource) walkBlock(ctx context.Context, c cid.Cid) ([]byte, string, bool, error) {
	data, rev, ok, err := a.src.Block(ctx, c)
	if err != nil || !ok {
		return nil, "", ok, err
	}
	if err := car.CheckBlock(c, data); err != nil {
		return nil, "", false, err
	}
	return data, rev, true, nil
}

func (a adoptSource) recordRev(ctx context.Context, collection, rkey string) (string, error) {
	return a.src.RecordRev(ctx, collection, rkey)
}

// Adopt creates did's repository from src with src's head commit opts.Commit (see the top of this file). The
// repository must not exist (ErrRepoExists).
func (s *Store) Adopt(ctx context.Context, did syntax.DID, src AdoptSource, opts AdoptOptions) (res *AdoptResult, err error) {
	if _, err := syntax.ParseDID(did.String()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWrite, err)
	}
	if opts.VerifyKey == nil || !opts.Commit.Defined() {
		return nil, errors.New("repo: Adopt needs the head commit and the account's key")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if err := s.claim(did, ErrRepoExists); err != nil {
		return nil, err
	}
	defer s.unclaim(did)
	path := s.repoPath(did)
	if _, err := os.Stat(path); err == nil {
		return nil, ErrRepoExists
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	dir := s.repoDir(did)
	_, statErr := os.Stat(dir)
	if err := mkdirDurable(s.dir, dir); err != nil {
		return nil, err
	}
	buildPath := filepath.Join(dir, "adopt-"+randomTag()+".sqlite")
	b, err := openBuild(ctx, buildPath)
	if err != nil {
		return nil, err
	}
	defer func() {
		b.close()
		os.Remove(buildPath)
		if err != nil && errors.Is(statErr, os.ErrNotExist) {
			os.Remove(dir)
		}
	}()
	res, err = b.adopt(ctx, did, adoptSource{src}, opts)
	if err != nil {
		if errors.Is(err, ErrImportInvalid) { // the commit's, the walker's and CheckBlock's reasons
			return nil, adoptError("%s", strings.TrimPrefix(err.Error(), ErrImportInvalid.Error()+": "))
		}
		return nil, err
	}
	b.close()
	if err := syncFile(buildPath); err != nil {
		return nil, err
	}
	if err := os.Rename(buildPath, path); err != nil {
		return nil, err
	}
	return res, syncDir(dir)
}

func adoptError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAdoptInvalid, fmt.Sprintf(format, args...))
}

func (b *buildFile) adopt(ctx context.Context, did syntax.DID, src adoptSource, opts AdoptOptions) (*AdoptResult, error) {
	data, commitRev, ok, err := src.walkBlock(ctx, opts.Commit)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, adoptError("the head commit %s is missing", opts.Commit)
	}
	c, err := car.VerifyCommit(data, did, opts.VerifyKey)
	if err != nil {
		return nil, err // Adopt turns it into ErrAdoptInvalid
	}

	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	b.tx = tx
	records, err := copyTree(ctx, tx, src, c.Data, c.Rev, "the repository")
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING",
		opts.Commit.Bytes(), orRev(commitRev, c.Rev), data); err != nil {
		return nil, err
	}
	head := Head{Commit: opts.Commit, Rev: c.Rev, Data: c.Data}
	if _, err := tx.ExecContext(ctx, "INSERT INTO head (id, commit_cid, rev, data_cid) VALUES (1, ?, ?, ?)",
		head.Commit.Bytes(), head.Rev, head.Data.Bytes()); err != nil {
		return nil, err
	}

	res := &AdoptResult{Head: head, Records: records}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO blobs ("+blobColumns+`) VALUES (?, ?, ?, ?, 0, 0,
		CASE WHEN EXISTS (SELECT 1 FROM record_blobs WHERE blob_cid = ?1) THEN NULL ELSE ? END)
		ON CONFLICT (cid) DO NOTHING`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	for _, bl := range opts.Blobs {
		if !bl.CID.Defined() {
			return nil, adoptError("a blob without a CID")
		}
		if _, err := ins.ExecContext(ctx, bl.CID.String(), bl.MimeType, bl.Size, ms(bl.CreatedAt), ms(opts.Now)); err != nil {
			return nil, err
		}
	}
	for _, q := range []struct {
		n *int64
		q string
	}{
		{&res.Blocks, "SELECT count(*) FROM blocks"},
		{&res.BlobRefs, "SELECT count(DISTINCT blob_cid) FROM record_blobs"},
		{&res.MissingBlobs, "SELECT count(DISTINCT blob_cid) FROM record_blobs WHERE blob_cid NOT IN (SELECT cid FROM blobs)"},
		{&res.Blobs, "SELECT count(*) FROM blobs"},
		{&res.UnreferencedBlobs, "SELECT count(*) FROM blobs WHERE unref_at IS NOT NULL"},
	} {
		if err := tx.QueryRowContext(ctx, q.q).Scan(q.n); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	b.tx = nil
	return res, nil
}
