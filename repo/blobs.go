package repo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
)

// Blob metadata lives in the repository database so that the links from records to blobs (record_blobs) change
// in the same transaction as the records themselves: a crash can never leave a record without its links, or a
// blob looking unused while a record still uses it. The bytes are elsewhere (pds/blobstore); the server calls
// BeginBlob/FinishBlob around writing them and ClaimDueBlobs/FinishBlobDelete around deleting them.
//
// Every statement that changes blob rows runs under the repository's write lock, so checks made before a
// commit (CheckBlobRefs) still hold when it commits.

var (
	// ErrBlobNotFound: the account has no such blob (or it is being uploaded or deleted).
	ErrBlobNotFound = errors.New("blob not found")
)

// BlobMismatchError: a record's blob reference declares a MIME type or size that is not the stored blob's.
type BlobMismatchError struct {
	CID      cid.Cid
	Field    string // "mimeType" or "size"
	Stored   string
	Declared string
}

func (e *BlobMismatchError) Error() string {
	return fmt.Sprintf("blob %s: %s is %s, the record declares %s", e.CID, e.Field, e.Stored, e.Declared)
}

// BlobRef is a blob reference of a record, as the record declares it.
type BlobRef struct {
	CID      cid.Cid
	MimeType string
	Size     int64
}

// BlobRefsFromCBOR returns the blob references of a record's DAG-CBOR, one per distinct CID, for WriteOp.Blobs
// when the caller has only the encoded record (a repository import).
func BlobRefsFromCBOR(record []byte) ([]BlobRef, error) {
	val, err := atdata.UnmarshalCBOR(record)
	if err != nil {
		return nil, err
	}
	var refs []BlobRef
	seen := map[cid.Cid]bool{}
	for _, b := range atdata.ExtractBlobs(val) {
		c := cid.Cid(b.Ref)
		if !seen[c] {
			seen[c] = true
			refs = append(refs, BlobRef{CID: c, MimeType: b.MimeType, Size: b.Size})
		}
	}
	return refs, nil
}

// BlobState is the life-cycle state of a blob row.
type BlobState int

const (
	BlobReady     BlobState = 0
	BlobUploading BlobState = 1 // between BeginBlob and FinishBlob (or a crash in between)
	BlobDeleting  BlobState = 2 // claimed by ClaimDueBlobs
)

// Blob is the metadata of one blob of the account.
type Blob struct {
	CID       cid.Cid
	MimeType  string
	Size      int64
	CreatedAt time.Time
	State     BlobState
	// Temp: uploaded and not referenced by any record since.
	Temp bool
	// Unreferenced is when the last record referencing the blob went away (or the upload time for a temporary
	// blob); zero while a record references it.
	Unreferenced time.Time
}

// Referenced reports whether a record references the blob.
func (b *Blob) Referenced() bool { return b.Unreferenced.IsZero() }

// Servable reports whether getBlob may serve the blob: complete and referenced by a record (an upload nobody
// uses is not published, as in the reference PDS).
func (b *Blob) Servable() bool {
	return b.State == BlobReady && b.Referenced()
}

func ms(t time.Time) int64 { return t.UnixMilli() }

const blobColumns = "cid, mime, size, created_at, state, temp, unref_at"

func scanBlob(row interface{ Scan(...any) error }) (*Blob, error) {
	var (
		b       Blob
		cs      string
		created int64
		unref   sql.NullInt64
		temp    int
	)
	if err := row.Scan(&cs, &b.MimeType, &b.Size, &created, &b.State, &temp, &unref); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrBlobNotFound
		}
		return nil, err
	}
	c, err := cid.Decode(cs)
	if err != nil {
		return nil, fmt.Errorf("corrupt blob cid %q: %w", cs, err)
	}
	b.CID = c
	b.CreatedAt = time.UnixMilli(created)
	b.Temp = temp == 1
	if unref.Valid {
		b.Unreferenced = time.UnixMilli(unref.Int64)
	}
	return &b, nil
}

func getBlobRow(ctx context.Context, q querier, c cid.Cid) (*Blob, error) {
	return scanBlob(q.QueryRowContext(ctx, "SELECT "+blobColumns+" FROM blobs WHERE cid = ?", c.String()))
}

// GetBlob returns the metadata of blob c, in any state (ErrBlobNotFound).
func (r *Repo) GetBlob(ctx context.Context, c cid.Cid) (*Blob, error) {
	return getBlobRow(ctx, r.db, c)
}

// BlobReferenced reports whether a record references c (whether or not the account has the blob).
func (r *Repo) BlobReferenced(ctx context.Context, c cid.Cid) (bool, error) {
	var one int
	err := r.db.QueryRowContext(ctx, "SELECT 1 FROM record_blobs WHERE blob_cid = ? LIMIT 1", c.String()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// BeginBlob records an upload whose bytes are about to be promoted in the blob store. A new blob is inserted as
// uploading (so a crash before FinishBlob leaves a row that expires, never one that looks complete); a blob
// being deleted is revived the same way; an existing blob keeps its metadata (the first upload's MIME type).
// The returned row is the stored one.
func (r *Repo) BeginBlob(ctx context.Context, ref BlobRef, now time.Time) (*Blob, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur, err := getBlobRow(ctx, r.db, ref.CID)
	switch {
	case errors.Is(err, ErrBlobNotFound):
		_, err = r.execDurable(ctx, `INSERT INTO blobs (cid, mime, size, created_at, state, temp, unref_at)
			VALUES (?, ?, ?, ?, ?, 1, ?)`, ref.CID.String(), ref.MimeType, ref.Size, ms(now), BlobUploading, ms(now))
	case err != nil:
		return nil, err
	case cur.State == BlobDeleting:
		// The GC has not deleted the bytes yet (the caller holds the blob's lock, so it is not doing so now):
		// start over as a new upload.
		_, err = r.execDurable(ctx, `UPDATE blobs SET mime = ?, size = ?, state = ?, temp = 1, unref_at = ?
			WHERE cid = ?`, ref.MimeType, ref.Size, BlobUploading, ms(now), ref.CID.String())
	default:
		return cur, nil
	}
	if err != nil {
		return nil, err
	}
	return getBlobRow(ctx, r.db, ref.CID)
}

// FinishBlob marks blob c ready once its bytes are in place. A blob that records already reference (an
// imported repository's) becomes permanent at once; otherwise it is a temporary upload again, expiring counted
// from now.
func (r *Repo) FinishBlob(ctx context.Context, c cid.Cid, now time.Time) (*Blob, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	// Durable: the upload is acknowledged next, and records may reference the blob at once.
	res, err := r.execDurable(ctx, `UPDATE blobs SET state = ?1,
			temp     = CASE WHEN EXISTS (SELECT 1 FROM record_blobs WHERE blob_cid = ?3) THEN 0 ELSE 1 END,
			unref_at = CASE WHEN EXISTS (SELECT 1 FROM record_blobs WHERE blob_cid = ?3) THEN NULL ELSE ?2 END
		WHERE cid = ?3`, BlobReady, ms(now), c.String())
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrBlobNotFound
	}
	return getBlobRow(ctx, r.db, c)
}

// checkBlobRefs verifies, before a commit changes anything, that every blob the writes reference is a ready blob
// of this account whose stored MIME type and size are the declared ones (so the lexicon's
// accept and maxSize constraints, checked against the declared values, hold for the real ones). Caller holds wmu.
func (r *Repo) checkBlobRefs(ctx context.Context, ops []WriteOp) error {
	for _, op := range ops {
		for _, ref := range op.Blobs {
			b, err := getBlobRow(ctx, r.db, ref.CID)
			if errors.Is(err, ErrBlobNotFound) || (err == nil && b.State != BlobReady) {
				return fmt.Errorf("%w: %s", ErrBlobNotFound, ref.CID)
			}
			if err != nil {
				return err
			}
			if b.MimeType != ref.MimeType {
				return &BlobMismatchError{CID: ref.CID, Field: "mimeType", Stored: b.MimeType, Declared: ref.MimeType}
			}
			if b.Size != ref.Size {
				return &BlobMismatchError{CID: ref.CID, Field: "size", Stored: fmt.Sprint(b.Size), Declared: fmt.Sprint(ref.Size)}
			}
		}
	}
	return nil
}

// linkBlobs updates record_blobs for the commit's changes inside its transaction: the links of updated and
// deleted records are dropped, those of created and updated records added; referenced blobs become permanent,
// and blobs left without any referencing record are stamped unreferenced (the GC collects them after the grace
// period). It reports whether any blob became unreferenced.
func linkBlobs(ctx context.Context, tx *sql.Tx, changes []*change, now time.Time) (bool, error) {
	dropped := map[string]bool{}
	for _, ch := range changes {
		if ch.action == ActionCreate {
			continue // a created record had no links
		}
		rows, err := tx.QueryContext(ctx, "DELETE FROM record_blobs WHERE collection = ? AND rkey = ? RETURNING blob_cid", ch.collection, ch.rkey)
		if err != nil {
			return false, err
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return false, err
			}
			dropped[c] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
	}
	for _, ch := range changes {
		for _, ref := range ch.blobs {
			c := ref.CID.String()
			if _, err := tx.ExecContext(ctx, "INSERT INTO record_blobs (blob_cid, collection, rkey) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", c, ch.collection, ch.rkey); err != nil {
				return false, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE blobs SET temp = 0, unref_at = NULL WHERE cid = ?", c); err != nil {
				return false, err
			}
		}
	}
	unreferenced := false
	for c := range dropped {
		res, err := tx.ExecContext(ctx, `UPDATE blobs SET temp = 0, unref_at = ?1
			WHERE cid = ?2 AND unref_at IS NULL AND NOT EXISTS (SELECT 1 FROM record_blobs WHERE blob_cid = ?2)`, ms(now), c)
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			unreferenced = true
		}
	}
	return unreferenced, nil
}

// ClaimDueBlobs marks as deleting, and returns, at most limit blobs that are due for deletion at now: temporary
// uploads unreferenced for tempExpiry, formerly referenced blobs unreferenced for grace, and blobs already being
// deleted (a deletion interrupted by a crash or an error). A claimed blob can no longer be referenced by a
// record; the caller deletes its bytes, then calls FinishBlobDelete.
func (r *Repo) ClaimDueBlobs(ctx context.Context, now time.Time, tempExpiry, grace time.Duration, limit int) ([]cid.Cid, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	rows, err := r.db.QueryContext(ctx, `UPDATE blobs SET state = ?1 WHERE cid IN (
			SELECT cid FROM blobs WHERE unref_at IS NOT NULL
			AND (state = ?1 OR unref_at <= CASE temp WHEN 1 THEN ?2 ELSE ?3 END) LIMIT ?4)
		RETURNING cid`, BlobDeleting, ms(now.Add(-tempExpiry)), ms(now.Add(-grace)), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []cid.Cid
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		c, err := cid.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("corrupt blob cid %q: %w", s, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// FinishBlobDelete removes the row of blob c after its bytes were deleted, if it is still being deleted (an
// upload may have revived it meanwhile).
func (r *Repo) FinishBlobDelete(ctx context.Context, c cid.Cid) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.db.ExecContext(ctx, "DELETE FROM blobs WHERE cid = ? AND state = ?", c.String(), BlobDeleting)
	return err
}

// NextBlobDue returns when the next blob becomes due for deletion (ok false: no unreferenced blob).
func (r *Repo) NextBlobDue(ctx context.Context, tempExpiry, grace time.Duration) (time.Time, bool, error) {
	var next sql.NullInt64
	err := r.db.QueryRowContext(ctx, `SELECT min(CASE WHEN state = ?1 THEN 0 WHEN temp = 1 THEN unref_at + ?2 ELSE unref_at + ?3 END)
		FROM blobs WHERE unref_at IS NOT NULL`, BlobDeleting, tempExpiry.Milliseconds(), grace.Milliseconds()).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(next.Int64), true, nil
}

// ListBlobs lists, in CID order after cursor, the CIDs of blobs referenced by records, only those referenced by
// records written after the since rev when since is set (com.atproto.sync.listBlobs). The returned cursor is
// empty on the last page.
func (r *Repo) ListBlobs(ctx context.Context, since, cursor string, limit int) ([]string, string, error) {
	limit = pageLimit(limit)
	var rows *sql.Rows
	var err error
	if since == "" {
		rows, err = r.db.QueryContext(ctx, `SELECT DISTINCT blob_cid FROM record_blobs WHERE blob_cid > ?
			ORDER BY blob_cid LIMIT ?`, cursor, limit+1)
	} else {
		rows, err = r.db.QueryContext(ctx, `SELECT DISTINCT rb.blob_cid FROM record_blobs rb
			JOIN records r ON r.collection = rb.collection AND r.rkey = rb.rkey
			WHERE r.rev > ? AND rb.blob_cid > ? ORDER BY rb.blob_cid LIMIT ?`, since, cursor, limit+1)
	}
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	return page(out, limit, func(s string) string { return s })
}

// MissingBlob is a blob referenced by a record that the account does not have.
type MissingBlob struct {
	CID        string
	Collection string
	RKey       string // of one record referencing it
}

// ListMissingBlobs lists, in CID order after cursor, the blobs that records reference but the account does not
// have (ready): what a migrated account must still upload (com.atproto.repo.listMissingBlobs).
func (r *Repo) ListMissingBlobs(ctx context.Context, cursor string, limit int) ([]MissingBlob, string, error) {
	limit = pageLimit(limit)
	rows, err := r.db.QueryContext(ctx, `SELECT rb.blob_cid, min(rb.collection || '/' || rb.rkey) FROM record_blobs rb
		WHERE rb.blob_cid > ? AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.cid = rb.blob_cid AND b.state = ?)
		GROUP BY rb.blob_cid ORDER BY rb.blob_cid LIMIT ?`, cursor, BlobReady, limit+1)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []MissingBlob
	for rows.Next() {
		var m MissingBlob
		var path string
		if err := rows.Scan(&m.CID, &path); err != nil {
			return nil, "", err
		}
		for i := 0; i < len(path); i++ {
			if path[i] == '/' {
				m.Collection, m.RKey = path[:i], path[i+1:]
				break
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	return page(out, limit, func(m MissingBlob) string { return m.CID })
}

// BlobCounts returns how many distinct blobs records reference and how many of those the account has
// (checkAccountStatus' expectedBlobs and importedBlobs).
func (r *Repo) BlobCounts(ctx context.Context) (expected, imported int64, err error) {
	err = r.db.QueryRowContext(ctx, `SELECT count(DISTINCT rb.blob_cid),
			count(DISTINCT CASE WHEN b.state = ? THEN rb.blob_cid END)
		FROM record_blobs rb LEFT JOIN blobs b ON b.cid = rb.blob_cid`, BlobReady).Scan(&expected, &imported)
	return expected, imported, err
}

func pageLimit(limit int) int {
	if limit <= 0 {
		return 500
	}
	return min(limit, maxListLimit)
}

// page trims a result fetched with limit+1 rows and returns the cursor of the next page ("" on the last).
func page[T any](rows []T, limit int, key func(T) string) ([]T, string, error) {
	if len(rows) > limit {
		rows = rows[:limit]
		return rows, key(rows[limit-1]), nil
	}
	return rows, "", nil
}
