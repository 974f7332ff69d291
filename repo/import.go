package repo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/repo/car"
)

// Repository import (com.atproto.repo.importRepo) replaces an account's whole repository with the one in a CAR,
// in three phases, none of which holds the CAR in memory:
//
//  1. Stage: the CAR is streamed into a scratch SQLite file next to the repository, every block's hash checked
//     against its CID (CIDv1, dag-cbor, sha2-256 only) and its size bounded.
//  2. Verify and build: the root commit must be a v3 commit of the importing DID, signed by the key the caller
//     got from the DID document, with a rev not in the future. The MST is walked from the staged blocks in key
//     order, and every node is checked (canonical encoding, strictly increasing valid repo paths, the height of
//     every key, children exactly one layer down, no empty nodes, every record present and parseable). The
//     nodes and records are written, in that walk order, into a new repository file with the records index and
//     the record->blob links, and a new head commit over the same data root is signed with the caller's key
//     (this server's key for the account: what relays will check once the DID document points here).
//  3. Swap: with the repository closed to everyone (Repo calls wait), the account's blob rows (uploaded
//     meanwhile or before) are carried over, the old file is checkpointed and closed, and the new file is
//     renamed over it. A failure at any earlier point leaves the old repository untouched; a crash leaves at
//     most scratch files, removed by the next import.
//
// Memory is bounded by the MST depth and SQLite's page caches, not by the repository's size.

var (
	// ErrImportInvalid: the CAR is malformed or does not hold a valid, complete, correctly signed repository of
	// the account. Wrapped with the reason, which is safe to show the client.
	ErrImportInvalid = car.ErrInvalid
	// ErrImportTooLarge: the CAR is larger than ImportOptions.MaxBytes.
	ErrImportTooLarge = car.ErrTooLarge
	// ErrImportInProgress: another import of the same repository is running.
	ErrImportInProgress = errors.New("an import of this repository is already in progress")
	// ErrImportConflict: the repository got a newer commit while the import was being built.
	ErrImportConflict = errors.New("the repository changed during the import")
)

const (
	// MaxImportBlockSize bounds one block of an imported CAR (car.MaxBlockSize).
	MaxImportBlockSize = car.MaxBlockSize
	// maxFutureRev: relays refuse a rev more than 5 minutes ahead of their clock; so does the import.
	maxFutureRev = 5 * time.Minute
	importPrefix = "import-"
)

// ImportOptions are the caller's part of an import.
type ImportOptions struct {
	// VerifyKey is the signing key of the account's DID document as it is now: the CAR's commit must verify
	// with it. Required.
	VerifyKey atcrypto.PublicKey
	// Signer signs the new head commit (the account's key on this server). Required.
	Signer atcrypto.PrivateKey
	// MaxBytes is the largest CAR accepted; 0 means no limit.
	MaxBytes int64
	// OnBlobsUnreferenced, if set, runs before the swap when the import leaves blobs the account has without any
	// record referencing them (so the caller can durably schedule their collection); an error aborts the import.
	OnBlobsUnreferenced func(context.Context) error
}

// ImportResult describes a completed import.
type ImportResult struct {
	Head           Head    // the new head: signed by ImportOptions.Signer, over the imported data root
	ImportedCommit cid.Cid // the CAR's commit
	ImportedRev    string
	Records        int64 // records in the repository
	Blocks         int64 // blocks stored: the commit, the MST nodes and the distinct records
	BlobRefs       int64 // distinct blobs the records reference
	Bytes          int64 // CAR bytes read
	// UnreferencedBlobs: blobs the account had that no imported record references (collected after the grace period).
	UnreferencedBlobs int64
}

// Import replaces did's repository with the repository in the CAR read from car (see the top of this file).
// The repository must exist (ErrRepoNotFound). No firehose event is produced: the caller announces the new
// head (#sync) when it activates the account.
func (s *Store) Import(ctx context.Context, did syntax.DID, body io.Reader, opts ImportOptions) (*ImportResult, error) {
	if opts.VerifyKey == nil || opts.Signer == nil {
		return nil, errors.New("repo: Import needs VerifyKey and Signer")
	}
	if err := s.claimImport(did); err != nil {
		return nil, err
	}
	defer s.unclaimImport(did)

	r, err := s.Repo(ctx, did)
	if err != nil {
		return nil, err
	}
	cur, err := r.Head(ctx)
	r.Release()
	if err != nil {
		return nil, err
	}

	dir := s.repoDir(did)
	removeImportFiles(dir, "") // leftovers of an import that crashed
	tag := randomTag()
	stagingPath := filepath.Join(dir, importPrefix+tag+"-staging.sqlite")
	buildPath := filepath.Join(dir, importPrefix+tag+".sqlite")
	defer removeImportFiles(dir, tag)

	st, err := openStaging(ctx, stagingPath)
	if err != nil {
		return nil, err
	}
	defer st.close()
	root, nbytes, err := car.Read(ctx, body, opts.MaxBytes, st.put)
	if err != nil {
		return nil, err
	}
	if err := st.finish(); err != nil {
		return nil, err
	}

	commit, err := st.verifyCommit(ctx, root, did, opts.VerifyKey)
	if err != nil {
		return nil, err
	}
	b, err := openBuild(ctx, buildPath)
	if err != nil {
		return nil, err
	}
	defer b.close()
	res, err := b.build(ctx, st, did, commit, cur, opts.Signer)
	if err != nil {
		return nil, err
	}
	res.ImportedCommit, res.Bytes = root, nbytes
	st.close() // the scratch copy is no longer needed; free the disk before the swap

	if err := s.swapIn(ctx, did, b, res, opts); err != nil {
		return nil, err
	}
	return res, nil
}

func randomTag() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// removeImportFiles deletes the scratch files of the import tag in dir (all of them when tag is "").
func removeImportFiles(dir, tag string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), importPrefix+tag) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (s *Store) claimImport(did syntax.DID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	if s.importing == nil {
		s.importing = map[syntax.DID]bool{}
	}
	if s.importing[did] {
		return ErrImportInProgress
	}
	s.importing[did] = true
	return nil
}

func (s *Store) unclaimImport(did syntax.DID) {
	s.mu.Lock()
	delete(s.importing, did)
	s.mu.Unlock()
}

// openScratch opens a SQLite file that is only ever thrown away or fsynced by hand: no journal, no syncs, one
// connection.
func openScratch(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(OFF)")
	q.Add("_pragma", "synchronous(OFF)")
	q.Add("_pragma", "cache_size(-16000)") // 16 MB of page cache
	q.Add("_pragma", "locking_mode(EXCLUSIVE)")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// ---- phase 1: staging ----

// staging holds the CAR's blocks by CID.
type staging struct {
	db  *sql.DB
	tx  *sql.Tx
	ins *sql.Stmt
	get *sql.Stmt
	n   int
}

// stagingBatch is how many blocks go into one transaction (bounded journal-less transactions keep the page
// cache from growing).
const stagingBatch = 20000

func openStaging(ctx context.Context, path string) (*staging, error) {
	db, err := openScratch(path)
	if err != nil {
		return nil, err
	}
	st := &staging{db: db}
	if _, err := db.ExecContext(ctx, "CREATE TABLE staged (cid BLOB NOT NULL, data BLOB NOT NULL); CREATE UNIQUE INDEX staged_cid ON staged (cid)"); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

func (st *staging) put(ctx context.Context, c cid.Cid, data []byte) error {
	if st.tx == nil {
		tx, err := st.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		st.tx = tx
		if st.ins, err = tx.PrepareContext(ctx, "INSERT INTO staged (cid, data) VALUES (?, ?) ON CONFLICT (cid) DO NOTHING"); err != nil {
			return err
		}
	}
	if _, err := st.ins.ExecContext(ctx, c.Bytes(), data); err != nil {
		return err
	}
	if st.n++; st.n%stagingBatch == 0 {
		return st.commit()
	}
	return nil
}

func (st *staging) commit() error {
	if st.tx == nil {
		return nil
	}
	st.ins.Close()
	err := st.tx.Commit()
	st.tx, st.ins = nil, nil
	return err
}

// finish ends staging; afterwards blocks are read with block.
func (st *staging) finish() error {
	if err := st.commit(); err != nil {
		return err
	}
	var err error
	st.get, err = st.db.Prepare("SELECT data FROM staged WHERE cid = ?")
	return err
}

// block returns a staged block; ok is false if the CAR did not have it.
func (st *staging) block(ctx context.Context, c cid.Cid) (data []byte, ok bool, err error) {
	err = st.get.QueryRowContext(ctx, c.Bytes()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return data, err == nil, err
}

func (st *staging) close() {
	if st.db == nil {
		return
	}
	if st.tx != nil {
		st.tx.Rollback()
	}
	if st.get != nil {
		st.get.Close()
	}
	st.db.Close()
	st.db = nil
}

// verifyCommit reads and checks the root commit (car.VerifyCommit), and that its rev is not in the future.
func (st *staging) verifyCommit(ctx context.Context, root cid.Cid, did syntax.DID, key atcrypto.PublicKey) (*atrepo.Commit, error) {
	data, ok, err := st.block(ctx, root)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, car.Invalid("the CAR's root %s is not in the CAR", root)
	}
	c, err := car.VerifyCommit(data, did, key)
	if err != nil {
		return nil, err
	}
	rev, _ := syntax.ParseTID(c.Rev)
	if rev.Time().After(time.Now().Add(maxFutureRev)) {
		return nil, car.Invalid("the commit's rev %s is in the future", c.Rev)
	}
	return c, nil
}

// ---- phase 2: build ----

// build is the new repository file being written.
type buildFile struct {
	path string
	db   *sql.DB
	tx   *sql.Tx
}

func openBuild(ctx context.Context, path string) (*buildFile, error) {
	db, err := openScratch(path)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return &buildFile{path: path, db: db}, nil
}

func (b *buildFile) close() {
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
	}
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
}

// walkSource is where copyTree reads a repository: the staging file of an import, another server's repository
// for Adopt. Block also gives the rev the block was stored at ("": the copy's default rev), RecordRev a record's.
type walkSource interface {
	walkBlock(ctx context.Context, c cid.Cid) (data []byte, rev string, ok bool, err error)
	recordRev(ctx context.Context, collection, rkey string) (string, error)
}

func (st *staging) walkBlock(ctx context.Context, c cid.Cid) ([]byte, string, bool, error) {
	data, ok, err := st.block(ctx, c)
	return data, "", ok, err
}

func (st *staging) recordRev(context.Context, string, string) (string, error) { return "", nil }

// revSource is the car.Source over a walkSource; it keeps the rev of the block it gave last, which is the
// block the walker's next hook call is about.
type revSource struct {
	src     walkSource
	lastRev string
}

func (r *revSource) Block(ctx context.Context, c cid.Cid) ([]byte, bool, error) {
	data, rev, ok, err := r.src.walkBlock(ctx, c)
	r.lastRev = rev
	return data, ok, err
}

// copyTree checks the MST under root and its records (car.Walker) and copies them into tx: every block with
// the rev its source gives (else rev), the records index and the record->blob links. It returns the records
// copied. Import and Adopt share it.
func copyTree(ctx context.Context, tx *sql.Tx, src walkSource, root cid.Cid, rev, from string) (int64, error) {
	var insBlock, insRecord, insRef *sql.Stmt
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&insBlock, "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING"},
		{&insRecord, "INSERT INTO records (collection, rkey, cid, rev) VALUES (?, ?, ?, ?)"},
		{&insRef, "INSERT INTO record_blobs (blob_cid, collection, rkey) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"},
	} {
		stmt, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			return 0, err
		}
		defer stmt.Close()
		*p.stmt = stmt
	}
	rs := &revSource{src: src}
	w := &car.Walker{Source: rs, From: from,
		Node: func(ctx context.Context, c cid.Cid, data []byte) error {
			_, err := insBlock.ExecContext(ctx, c.Bytes(), orRev(rs.lastRev, rev), data)
			return err
		},
		Record: func(ctx context.Context, coll syntax.NSID, rkey syntax.RecordKey, c cid.Cid, data []byte, blobs []cid.Cid) error {
			if _, err := insBlock.ExecContext(ctx, c.Bytes(), orRev(rs.lastRev, rev), data); err != nil {
				return err
			}
			recRev, err := src.recordRev(ctx, coll.String(), rkey.String())
			if err != nil {
				return err
			}
			if _, err := insRecord.ExecContext(ctx, coll.String(), rkey.String(), c.Bytes(), orRev(recRev, rev)); err != nil {
				return err
			}
			for _, ref := range blobs {
				if _, err := insRef.ExecContext(ctx, ref.String(), coll.String(), rkey.String()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	if err := w.Walk(ctx, root); err != nil {
		return 0, err
	}
	return w.Records, nil
}

func orRev(rev, def string) string {
	if rev == "" {
		return def
	}
	return rev
}

func (b *buildFile) build(ctx context.Context, st *staging, did syntax.DID, imported *atrepo.Commit, cur Head, signer atcrypto.PrivateKey) (*ImportResult, error) {
	// The new rev follows both the imported one and this repository's own.
	last, _ := syntax.ParseTID(imported.Rev)
	if t, err := syntax.ParseTID(cur.Rev); err == nil && t.String() > last.String() {
		last = t
	}
	clock := syntax.ClockFromTID(last)
	rev := clock.Next().String()

	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	b.tx = tx
	records, err := copyTree(ctx, tx, st, imported.Data, rev, "the CAR")
	if err != nil {
		return nil, err
	}

	commitCID, commitBytes, err := signedCommitBlock(did, imported.Data, rev, signer)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING", commitCID.Bytes(), rev, commitBytes); err != nil {
		return nil, err
	}
	head := Head{Commit: commitCID, Rev: rev, Data: imported.Data}
	if _, err := tx.ExecContext(ctx, "INSERT INTO head (id, commit_cid, rev, data_cid) VALUES (1, ?, ?, ?)",
		head.Commit.Bytes(), head.Rev, head.Data.Bytes()); err != nil {
		return nil, err
	}
	res := &ImportResult{Head: head, ImportedRev: imported.Rev, Records: records}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM blocks").Scan(&res.Blocks); err != nil {
		return nil, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(DISTINCT blob_cid) FROM record_blobs").Scan(&res.BlobRefs); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	b.tx = nil
	return res, nil
}

// ---- phase 3: swap ----

// swapIn replaces did's repository file with the build, with the repository closed to everyone else.
func (s *Store) swapIn(ctx context.Context, did syntax.DID, b *buildFile, res *ImportResult, opts ImportOptions) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrStoreClosed
	}
	if s.busy[did] {
		s.mu.Unlock()
		return fmt.Errorf("%w: deleted during the import", ErrRepoNotFound)
	}
	s.busy[did] = true // no Create or Delete meanwhile
	done := make(chan struct{})
	if s.swapping == nil {
		s.swapping = map[syntax.DID]chan struct{}{}
	}
	s.swapping[did] = done // Repo calls wait for the swap
	var old *Repo
	if e, ok := s.entries[did]; ok {
		old = e.Value.(*Repo)
		if idle := s.removeLocked(e); idle != nil {
			idle.close()
		}
	} else if r := s.evictedInUse[did]; r != nil {
		old = r
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.busy, did)
		delete(s.swapping, did)
		s.mu.Unlock()
		close(done)
	}()
	if old != nil && old.done != nil {
		select {
		case <-old.done: // the last handle was released and the old repository closed
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	path := s.repoPath(did)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: deleted during the import", ErrRepoNotFound)
		}
		return err
	}
	odb, err := openDB(ctx, path, 1, s.opts.BusyTimeout, syncFull)
	if err != nil {
		return err
	}
	closeOld := func() error {
		if odb == nil {
			return nil
		}
		err := odb.Close()
		odb = nil
		return err
	}
	defer closeOld()
	head, err := headRow(ctx, odb)
	if err != nil {
		return err
	}
	if head.Rev >= res.Head.Rev {
		return fmt.Errorf("%w: head %s is not older than %s", ErrImportConflict, head.Rev, res.Head.Rev)
	}
	unref, err := carryBlobs(ctx, odb, b.db, time.Now())
	if err != nil {
		return fmt.Errorf("carrying blob rows over: %w", err)
	}
	res.UnreferencedBlobs = unref
	if unref > 0 && opts.OnBlobsUnreferenced != nil {
		if err := opts.OnBlobsUnreferenced(ctx); err != nil {
			return err
		}
	}
	// Everything of the old file is in the main database file once checkpointed; closing it as the last
	// connection removes the WAL.
	if _, err := odb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return err
	}
	if err := closeOld(); err != nil {
		return err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("repository %s: WAL not empty after checkpoint", did)
	}
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")

	b.close()
	if err := syncFile(b.path); err != nil {
		return err
	}
	if err := os.Rename(b.path, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// carryBlobs copies the account's blob rows from the old repository into the new one and sets their reference
// state from the new records: referenced blobs are permanent, blobs that were referenced and are not any more
// are unreferenced from now (collected after the grace period), temporary uploads stay temporary. It returns
// how many became unreferenced.
func carryBlobs(ctx context.Context, from, to *sql.DB, now time.Time) (int64, error) {
	rows, err := from.QueryContext(ctx, "SELECT "+blobColumns+" FROM blobs")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	tx, err := to.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, "INSERT INTO blobs ("+blobColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	for rows.Next() {
		var (
			c, mime       string
			size, created int64
			state, temp   int
			unrefAt       sql.NullInt64
		)
		if err := rows.Scan(&c, &mime, &size, &created, &state, &temp, &unrefAt); err != nil {
			return 0, err
		}
		if _, err := ins.ExecContext(ctx, c, mime, size, created, state, temp, unrefAt); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE blobs SET temp = 0, unref_at = NULL
		WHERE cid IN (SELECT blob_cid FROM record_blobs)`); err != nil {
		return 0, err
	}
	r, err := tx.ExecContext(ctx, `UPDATE blobs SET unref_at = ?
		WHERE unref_at IS NULL AND cid NOT IN (SELECT blob_cid FROM record_blobs)`, ms(now))
	if err != nil {
		return 0, err
	}
	n, _ := r.RowsAffected()
	return n, tx.Commit()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
