package refpds

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// ActorStore is one account's store.sqlite and key, open read-only. It is a repo.AdoptSource.
type ActorStore struct {
	DID   string
	Dir   string // actors/<xx>/<did>
	Key   []byte // the account's secp256k1 signing key (32 bytes)
	db    *sql.DB
	copy  string
	stamp string // with Options.WhileRunning: the files' sizes and times when opened (Changed)

	getBlock, getRecordRev *sql.Stmt
}

// ActorDir is where the reference keeps did's store: <actors>/<first 2 hex of sha256(did)>/<did>.
func (d *Dir) ActorDir(did string) string {
	h := sha256.Sum256([]byte(did))
	return filepath.Join(d.ActorsDir, hex.EncodeToString(h[:])[:2], did)
}

// OpenActor opens did's store.sqlite and reads its key.
func (d *Dir) OpenActor(ctx context.Context, did string) (*ActorStore, error) {
	a := &ActorStore{DID: did, Dir: d.ActorDir(did)}
	dbPath := filepath.Join(a.Dir, "store.sqlite")
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("%s (the repository of %s): %w", dbPath, did, ErrMissing)
	}
	key, err := os.ReadFile(filepath.Join(a.Dir, "key"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s (the signing key of %s): %w", filepath.Join(a.Dir, "key"), did, ErrMissing)
	}
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s: %d bytes, not a 32-byte secp256k1 private key", filepath.Join(a.Dir, "key"), len(key))
	}
	a.Key = key
	if d.opts.WhileRunning {
		a.stamp = fileStamp(dbPath)
	}
	if a.db, a.copy, err = d.openDB(ctx, dbPath, "store.sqlite"); err != nil {
		return nil, err
	}
	if a.getBlock, err = a.db.PrepareContext(ctx, "SELECT content, repoRev FROM repo_block WHERE cid = ?"); err == nil {
		a.getRecordRev, err = a.db.PrepareContext(ctx, "SELECT repoRev FROM record WHERE collection = ? AND rkey = ?")
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("%s: %w", dbPath, err)
	}
	return a, nil
}

// Changed reports whether the store's files changed since it was opened (always false for a stopped
// reference): the running reference wrote to it meanwhile, so what was read may mix two states (or, on a file
// read as immutable, be torn) and should be read again. The reference writes a store only through its log
// (-wal) or a checkpoint into the file, and either changes a size or a modification time.
func (a *ActorStore) Changed() bool {
	return a.stamp != "" && fileStamp(filepath.Join(a.Dir, "store.sqlite")) != a.stamp
}

func fileStamp(path string) string {
	var b strings.Builder
	for _, sfx := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + sfx); err == nil {
			fmt.Fprintf(&b, "%d@%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("-;")
		}
	}
	return b.String()
}

// Close closes the store.
func (a *ActorStore) Close() error {
	for _, st := range []*sql.Stmt{a.getBlock, a.getRecordRev} {
		if st != nil {
			st.Close()
		}
	}
	err := a.db.Close()
	if a.copy != "" {
		os.RemoveAll(a.copy)
	}
	return err
}

func (a *ActorStore) errorf(err error) error {
	return fmt.Errorf("%s/store.sqlite: %w", a.Dir, err)
}

// Root returns the repository's head as store.sqlite records it.
func (a *ActorStore) Root(ctx context.Context) (Root, error) {
	var r Root
	err := a.db.QueryRowContext(ctx, "SELECT did, cid, rev FROM repo_root").Scan(&r.DID, &r.CID, &r.Rev)
	if errors.Is(err, sql.ErrNoRows) {
		return r, a.errorf(errors.New("no repository head (repo_root is empty)"))
	}
	if err != nil {
		return r, a.errorf(err)
	}
	return r, nil
}

// Block returns a block of the repository and the rev that stored it.
func (a *ActorStore) Block(ctx context.Context, c cid.Cid) ([]byte, string, bool, error) {
	var data []byte
	var rev string
	err := a.getBlock.QueryRowContext(ctx, c.String()).Scan(&data, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, a.errorf(err)
	}
	return data, rev, true, nil
}

// RecordRev returns the rev of the commit that last wrote the record ("" if the record table lacks it).
func (a *ActorStore) RecordRev(ctx context.Context, collection, rkey string) (string, error) {
	var rev string
	err := a.getRecordRev.QueryRowContext(ctx, collection, rkey).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", a.errorf(err)
	}
	return rev, nil
}

// Counts returns the numbers of records and blocks.
func (a *ActorStore) Counts(ctx context.Context) (records, blocks int64, err error) {
	err = a.db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM record), (SELECT count(*) FROM repo_block)").Scan(&records, &blocks)
	if err != nil {
		err = a.errorf(err)
	}
	return records, blocks, err
}

// Blob is a blob row of store.sqlite. A blob with a TempKey was uploaded and not yet used by a record: its
// bytes are still in the temporary location.
type Blob struct {
	CID         cid.Cid
	MimeType    string
	Size        int64
	TempKey     string
	CreatedAt   time.Time
	TakedownRef string
}

// Blobs returns the account's blobs.
func (a *ActorStore) Blobs(ctx context.Context) ([]Blob, error) {
	return query(ctx, a.db, a.Dir+"/store.sqlite", "SELECT cid, mimeType, size, tempKey, createdAt, takedownRef FROM blob ORDER BY cid",
		func(r *sql.Rows) (Blob, error) {
			var b Blob
			var c, created string
			var temp, takedown sql.NullString
			if err := r.Scan(&c, &b.MimeType, &b.Size, &temp, &created, &takedown); err != nil {
				return b, err
			}
			var err error
			if b.CID, err = cid.Decode(c); err != nil {
				return b, fmt.Errorf("blob %q: %w", c, err)
			}
			b.TempKey, b.TakedownRef = temp.String, takedown.String
			return b, parseInto(&b.CreatedAt, created)
		})
}

// RecordTakedown is a record hidden by a moderation takedown.
type RecordTakedown struct {
	URI, CID, Ref string
}

// RecordTakedowns returns the account's taken-down records.
func (a *ActorStore) RecordTakedowns(ctx context.Context) ([]RecordTakedown, error) {
	return query(ctx, a.db, a.Dir+"/store.sqlite", "SELECT uri, cid, takedownRef FROM record WHERE takedownRef IS NOT NULL ORDER BY uri",
		func(r *sql.Rows) (RecordTakedown, error) {
			var t RecordTakedown
			return t, r.Scan(&t.URI, &t.CID, &t.Ref)
		})
}

// Preference is one stored preference: its $type and the whole JSON object.
type Preference struct {
	Name      string
	ValueJSON string
}

// Preferences returns the account's preferences in stored order.
func (a *ActorStore) Preferences(ctx context.Context) ([]Preference, error) {
	return query(ctx, a.db, a.Dir+"/store.sqlite", "SELECT name, valueJson FROM account_pref ORDER BY id",
		func(r *sql.Rows) (Preference, error) {
			var p Preference
			return p, r.Scan(&p.Name, &p.ValueJSON)
		})
}

// BlobPath returns where the reference keeps did's blob c on disk: the quarantine for taken-down blobs.
func (d *Dir) BlobPath(did string, c cid.Cid, quarantined bool) string {
	if quarantined {
		return filepath.Join(d.BlobQuarantine, did, c.String())
	}
	return filepath.Join(d.BlobDisk, did, c.String())
}
