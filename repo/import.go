package repo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
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
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"
	"github.com/multiformats/go-multihash"
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
	ErrImportInvalid = errors.New("invalid repository import")
	// ErrImportTooLarge: the CAR is larger than ImportOptions.MaxBytes.
	ErrImportTooLarge = errors.New("repository import too large")
	// ErrImportInProgress: another import of the same repository is running.
	ErrImportInProgress = errors.New("an import of this repository is already in progress")
	// ErrImportConflict: the repository got a newer commit while the import was being built.
	ErrImportConflict = errors.New("the repository changed during the import")
)

const (
	// MaxImportBlockSize bounds one block of an imported CAR: records are at most 1 MiB of DAG-CBOR
	// (atdata.MAX_CBOR_RECORD_SIZE), MST nodes and commits far less.
	MaxImportBlockSize = 2 << 20
	maxCARHeaderSize   = 1024
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

// importError wraps ErrImportInvalid with a reason.
func importError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrImportInvalid, fmt.Sprintf(format, args...))
}

// Import replaces did's repository with the repository in the CAR read from car (see the top of this file).
// The repository must exist (ErrRepoNotFound). No firehose event is produced: the caller announces the new
// head (#sync) when it activates the account.
func (s *Store) Import(ctx context.Context, did syntax.DID, car io.Reader, opts ImportOptions) (*ImportResult, error) {
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
	root, nbytes, err := streamCAR(ctx, car, opts.MaxBytes, st.put)
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

// countingReader counts what it reads and fails once more than max bytes were read (max 0: no limit).
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
	err error // the underlying reader's failure, kept to tell it from a malformed CAR
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.max > 0 && c.n > c.max {
		return n, ErrImportTooLarge
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// streamCAR reads a CAR v1 with exactly one root, checking every block's CID against its bytes, and hands each
// block to put. It returns the root and the bytes read.
func streamCAR(ctx context.Context, r io.Reader, maxBytes int64, put func(context.Context, cid.Cid, []byte) error) (cid.Cid, int64, error) {
	cr := &countingReader{r: r, max: maxBytes}
	br := bufio.NewReaderSize(cr, 64<<10)
	fail := func(err error, what string) error {
		switch {
		case errors.Is(err, ErrImportTooLarge):
			return ErrImportTooLarge
		case cr.err != nil:
			return importError("could not read the request body: %v", cr.err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return importError("truncated CAR (%s)", what)
		}
		return importError("malformed CAR (%s): %v", what, err)
	}

	hl, err := binary.ReadUvarint(br)
	if err != nil {
		if errors.Is(err, io.EOF) && cr.n == 0 && cr.err == nil {
			return cid.Undef, 0, importError("empty body: a CAR file is required")
		}
		return cid.Undef, 0, fail(err, "header length")
	}
	if hl == 0 || hl > maxCARHeaderSize {
		return cid.Undef, 0, importError("malformed CAR: header of %d bytes", hl)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return cid.Undef, 0, fail(err, "header")
	}
	hdr, err := car.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(binary.AppendUvarint(nil, hl)), bytes.NewReader(hb))))
	if err != nil {
		return cid.Undef, 0, importError("malformed CAR header: %v", err)
	}
	if hdr.Version != 1 {
		return cid.Undef, 0, importError("unsupported CAR version %d", hdr.Version)
	}
	if len(hdr.Roots) != 1 {
		return cid.Undef, 0, importError("expected one root, the CAR has %d", len(hdr.Roots))
	}

	buf := make([]byte, 0, 64<<10)
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return cid.Undef, 0, err
			}
		}
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) && cr.err == nil {
				break // the end, between blocks
			}
			return cid.Undef, 0, fail(err, "block")
		}
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return cid.Undef, 0, fail(err, "block length")
		}
		if l == 0 {
			return cid.Undef, 0, importError("malformed CAR: empty section")
		}
		if l > MaxImportBlockSize+64 {
			return cid.Undef, 0, importError("block too large: %d bytes (at most %d)", l, MaxImportBlockSize)
		}
		if uint64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(br, buf); err != nil {
			return cid.Undef, 0, fail(err, "block")
		}
		n, c, err := cid.CidFromBytes(buf)
		if err != nil {
			return cid.Undef, 0, importError("malformed CAR: invalid CID: %v", err)
		}
		data := buf[n:]
		if err := checkBlock(c, data); err != nil {
			return cid.Undef, 0, err
		}
		if err := put(ctx, c, data); err != nil {
			return cid.Undef, 0, err
		}
	}
	return hdr.Roots[0], cr.n, nil
}

// checkBlock verifies that data is the block c names: a repository block is CIDv1 dag-cbor with a sha2-256
// hash of its bytes.
func checkBlock(c cid.Cid, data []byte) error {
	if len(data) > MaxImportBlockSize {
		return importError("block %s too large: %d bytes (at most %d)", c, len(data), MaxImportBlockSize)
	}
	if c.Version() != 1 || c.Type() != cid.DagCBOR {
		return importError("block %s is not a dag-cbor CIDv1 block", c)
	}
	mh, err := multihash.Decode(c.Hash())
	if err != nil || mh.Code != multihash.SHA2_256 || mh.Length != sha256.Size {
		return importError("block %s does not use a sha2-256 hash", c)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], mh.Digest) {
		return importError("block %s: its bytes do not match its CID", c)
	}
	return nil
}

// verifyCommit reads and checks the root commit.
func (st *staging) verifyCommit(ctx context.Context, root cid.Cid, did syntax.DID, key atcrypto.PublicKey) (*atrepo.Commit, error) {
	data, ok, err := st.block(ctx, root)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, importError("the CAR's root %s is not in the CAR", root)
	}
	var c atrepo.Commit
	if err := c.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
		return nil, importError("the CAR's root is not a repository commit: %v", err)
	}
	if err := c.VerifyStructure(); err != nil {
		return nil, importError("invalid commit: %v", err)
	}
	if c.DID != did.String() {
		return nil, importError("the commit is for %s, not for this account (%s)", c.DID, did)
	}
	if !c.Data.Defined() {
		return nil, importError("invalid commit: no data root")
	}
	rev, _ := syntax.ParseTID(c.Rev)
	if rev.Time().After(time.Now().Add(maxFutureRev)) {
		return nil, importError("the commit's rev %s is in the future", c.Rev)
	}
	if err := c.VerifySignature(key); err != nil {
		return nil, importError("the commit's signature does not verify with the signing key of the DID document")
	}
	return &c, nil
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

// walker copies a verified MST and its records from a source (the staging file of an import, another server's
// repository for Adopt) into the build.
type walker struct {
	st                          walkSource
	insBlock, insRecord, insRef *sql.Stmt
	rev                         string // the rev of blocks and records whose source gives none
	lastKey                     []byte
	records                     int64
	nodes                       int64
	from                        string // where the blocks come from, for messages ("the CAR")
}

// walkSource gives the walker a block and the rev it was stored at ("": the walker's rev), and a record's rev.
type walkSource interface {
	walkBlock(ctx context.Context, c cid.Cid) (data []byte, rev string, ok bool, err error)
	recordRev(ctx context.Context, collection, rkey string) (string, error)
}

func (st *staging) walkBlock(ctx context.Context, c cid.Cid) ([]byte, string, bool, error) {
	data, ok, err := st.block(ctx, c)
	return data, "", ok, err
}

func (st *staging) recordRev(context.Context, string, string) (string, error) { return "", nil }

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
	w := &walker{st: st, rev: rev, from: "the CAR"}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&w.insBlock, "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING"},
		{&w.insRecord, "INSERT INTO records (collection, rkey, cid, rev) VALUES (?, ?, ?, ?)"},
		{&w.insRef, "INSERT INTO record_blobs (blob_cid, collection, rkey) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"},
	} {
		if *p.stmt, err = tx.PrepareContext(ctx, p.q); err != nil {
			return nil, err
		}
		defer (*p.stmt).Close()
	}
	if err := w.node(ctx, imported.Data, -1, true); err != nil {
		return nil, err
	}

	commitCID, commitBytes, err := signedCommitBlock(did, imported.Data, rev, signer)
	if err != nil {
		return nil, err
	}
	if _, err := w.insBlock.ExecContext(ctx, commitCID.Bytes(), rev, commitBytes); err != nil {
		return nil, err
	}
	head := Head{Commit: commitCID, Rev: rev, Data: imported.Data}
	if _, err := tx.ExecContext(ctx, "INSERT INTO head (id, commit_cid, rev, data_cid) VALUES (1, ?, ?, ?)",
		head.Commit.Bytes(), head.Rev, head.Data.Bytes()); err != nil {
		return nil, err
	}
	res := &ImportResult{Head: head, ImportedRev: imported.Rev, Records: w.records}
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

// node checks and copies the MST node c and, in key order, its subtrees and records. height is the layer the
// node must be at (-1 for the root, whose layer its keys decide).
func (w *walker) node(ctx context.Context, c cid.Cid, height int, root bool) error {
	if w.nodes++; w.nodes%1024 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	data, blockRev, ok, err := w.st.walkBlock(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		return importError("MST node %s is missing from %s", c, w.from)
	}
	nd, err := mst.NodeDataFromCBOR(bytes.NewReader(data))
	if err != nil {
		return importError("MST node %s: %v", c, err)
	}
	// Keys, rebuilt from the prefix compression, and the canonical encoding they imply.
	keys := make([][]byte, len(nd.Entries))
	canon := mst.NodeData{Left: nd.Left, Entries: make([]mst.EntryData, len(nd.Entries))}
	var prev []byte
	for i, e := range nd.Entries {
		if e.PrefixLen < 0 || e.PrefixLen > int64(len(prev)) {
			return importError("MST node %s: bad key prefix length", c)
		}
		key := append(append([]byte{}, prev[:e.PrefixLen]...), e.KeySuffix...)
		if !mst.IsValidKey(key) {
			return importError("MST node %s: invalid key", c)
		}
		keys[i] = key
		p := mst.CountPrefixLen(prev, key)
		canon.Entries[i] = mst.EntryData{PrefixLen: int64(p), KeySuffix: key[p:], Value: e.Value, Right: e.Right}
		prev = key
	}
	var cb bytes.Buffer
	if err := canon.MarshalCBOR(&cb); err != nil {
		return err
	}
	if !bytes.Equal(cb.Bytes(), data) {
		return importError("MST node %s is not canonically encoded", c)
	}

	layer := height
	if len(keys) > 0 {
		layer = mst.HeightForKey(keys[0])
		if height >= 0 && layer != height {
			return importError("MST node %s is at the wrong height", c)
		}
		for _, k := range keys[1:] {
			if mst.HeightForKey(k) != layer {
				return importError("MST node %s holds keys of different heights", c)
			}
		}
	} else {
		switch {
		case root && nd.Left != nil:
			return importError("MST root %s holds no keys (not a canonical tree)", c)
		case !root && nd.Left == nil:
			return importError("empty MST node %s", c)
		}
	}
	hasChild := nd.Left != nil
	for _, e := range nd.Entries {
		hasChild = hasChild || e.Right != nil
	}
	if hasChild && layer <= 0 {
		return importError("MST node %s has children below the bottom layer", c)
	}

	if _, err := w.insBlock.ExecContext(ctx, c.Bytes(), orRev(blockRev, w.rev), data); err != nil {
		return err
	}
	if nd.Left != nil {
		if err := w.node(ctx, *nd.Left, layer-1, false); err != nil {
			return err
		}
	}
	for i, e := range nd.Entries {
		if w.lastKey != nil && bytes.Compare(keys[i], w.lastKey) <= 0 {
			return importError("MST keys out of order at %q", keys[i])
		}
		w.lastKey = keys[i]
		if err := w.record(ctx, string(keys[i]), e.Value); err != nil {
			return err
		}
		if e.Right != nil {
			if err := w.node(ctx, *e.Right, layer-1, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// record copies one record, with its index row and blob links.
func (w *walker) record(ctx context.Context, path string, c cid.Cid) error {
	coll, rkey, err := syntax.ParseRepoPath(path)
	if err != nil {
		return importError("invalid record path %q in the MST", path)
	}
	data, blockRev, ok, err := w.st.walkBlock(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		return importError("record %s (%s) is missing from %s", path, c, w.from)
	}
	refs, err := importBlobRefs(data)
	if err != nil {
		return importError("could not parse record at '%s': %v", path, err)
	}
	if _, err := w.insBlock.ExecContext(ctx, c.Bytes(), orRev(blockRev, w.rev), data); err != nil {
		return err
	}
	recRev, err := w.st.recordRev(ctx, coll.String(), rkey.String())
	if err != nil {
		return err
	}
	if _, err := w.insRecord.ExecContext(ctx, coll.String(), rkey.String(), c.Bytes(), orRev(recRev, w.rev)); err != nil {
		return err
	}
	for _, ref := range refs {
		if _, err := w.insRef.ExecContext(ctx, ref.String(), coll.String(), rkey.String()); err != nil {
			return err
		}
	}
	w.records++
	return nil
}

// importBlobRefs returns the distinct blobs a record references: blob objects and, like the reference PDS,
// the legacy {cid, mimeType} form of early records.
func importBlobRefs(record []byte) ([]cid.Cid, error) {
	if err := checkCBORNesting(record, maxRecordNesting); err != nil {
		return nil, err
	}
	val, err := atdata.UnmarshalCBOR(record)
	if err != nil {
		return nil, err
	}
	var out []cid.Cid
	seen := map[cid.Cid]bool{}
	add := func(c cid.Cid) {
		if c.Defined() && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, b := range atdata.ExtractBlobs(val) {
		add(cid.Cid(b.Ref))
	}
	var legacy func(v any)
	legacy = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 2 {
				cs, ok1 := x["cid"].(string)
				_, ok2 := x["mimeType"].(string)
				if ok1 && ok2 {
					if c, err := cid.Decode(cs); err == nil {
						add(c)
						return
					}
				}
			}
			for _, e := range x {
				legacy(e)
			}
		case []any:
			for _, e := range x {
				legacy(e)
			}
		}
	}
	legacy(val)
	return out, nil
}

// maxRecordNesting is the deepest record accepted, the limit createRecord applies to JSON records.
const maxRecordNesting = 128

// checkCBORNesting scans one CBOR item without recursion and refuses nesting deeper than max, indefinite
// lengths (not DAG-CBOR), truncation and trailing bytes, so a nesting bomb never reaches a recursive decoder.
func checkCBORNesting(b []byte, max int) error {
	stack := []uint64{1} // items still expected in each open container; the bottom is the top-level item
	i := 0
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if i >= len(b) {
			return errors.New("truncated CBOR")
		}
		major, info := b[i]>>5, b[i]&0x1f
		i++
		var arg uint64
		switch {
		case info < 24:
			arg = uint64(info)
		case info <= 27:
			n := 1 << (info - 24)
			if len(b)-i < n {
				return errors.New("truncated CBOR")
			}
			for _, c := range b[i : i+n] {
				arg = arg<<8 | uint64(c)
			}
			i += n
		default:
			return errors.New("indefinite-length or reserved CBOR item")
		}
		switch major {
		case 2, 3: // byte and text strings
			if arg > uint64(len(b)-i) {
				return errors.New("truncated CBOR")
			}
			i += int(arg)
		case 4, 5, 6: // arrays, maps (two items per entry), tags (one item)
			if major == 5 {
				arg *= 2
			} else if major == 6 {
				arg = 1
			}
			if arg > uint64(len(b)-i) {
				return errors.New("truncated CBOR")
			}
			if len(stack) > max {
				return fmt.Errorf("nested deeper than %d levels", max)
			}
			stack = append(stack, arg)
		}
	}
	if i != len(b) {
		return errors.New("trailing bytes after the CBOR item")
	}
	return nil
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
