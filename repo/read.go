package repo

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/repo/car"
)

// Record is one record of a listing.
type Record struct {
	Collection string
	RKey       string
	CID        cid.Cid
	Value      []byte // DAG-CBOR
}

const (
	defaultListLimit = 50
	maxListLimit     = 1000
)

// readTx runs fn in a read transaction: one consistent snapshot (WAL), no write lock.
func (r *Repo) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := r.db.BeginTx(sqlContext(ctx), nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// readSnapshot is readTx with the statement cache (fixed SQL only).
func (r *Repo) readSnapshot(ctx context.Context, fn func(q *cachedTx) error) error {
	return r.readTx(ctx, func(tx *sql.Tx) error { return fn(r.cachedTx(tx)) })
}

// q runs fixed SQL on the database through the statement cache.
func (r *Repo) q() cachedDB { return cachedDB{r.stmts, r.db} }

// Head returns the current commit.
func (r *Repo) Head(ctx context.Context) (Head, error) {
	return headRow(ctx, r.q())
}

// GetRecord returns the CID and DAG-CBOR of a record (ErrRecordNotFound).
func (r *Repo) GetRecord(ctx context.Context, collection, rkey string) (cid.Cid, []byte, error) {
	var cb, data []byte
	err := r.q().QueryRowContext(ctx, sqlGetRecord, collection, rkey).Scan(&cb, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return cid.Undef, nil, ErrRecordNotFound
	}
	if err != nil {
		return cid.Undef, nil, err
	}
	c, err := cidFromBytes(cb)
	if err != nil {
		return cid.Undef, nil, err
	}
	return c, data, nil
}

// ListRecords lists a collection by rkey, descending (newest TIDs first) or ascending with
// reverse. cursor is the last rkey of the previous page; the returned cursor is empty on
// the last page. limit <= 0 means 50; it is capped at 1000.
func (r *Repo) ListRecords(ctx context.Context, collection string, limit int, cursor string, reverse bool) ([]Record, string, error) {
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	args := []any{collection}
	if cursor != "" {
		args = append(args, cursor)
	}
	args = append(args, limit+1) // one more: is there a next page?
	rows, err := r.q().QueryContext(ctx, listRecordsSQL(reverse, cursor != ""), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var rec Record
		var cb []byte
		if err := rows.Scan(&rec.RKey, &cb, &rec.Value); err != nil {
			return nil, "", err
		}
		if rec.CID, err = cidFromBytes(cb); err != nil {
			return nil, "", err
		}
		rec.Collection = collection
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].RKey
	}
	return out, next, nil
}

// Collections lists the collections holding at least one record, sorted.
func (r *Repo) Collections(ctx context.Context) ([]string, error) {
	rows, err := r.q().QueryContext(ctx, "SELECT DISTINCT collection FROM records ORDER BY collection")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecordCount is the number of records in the head.
func (r *Repo) RecordCount(ctx context.Context) (int64, error) {
	var n int64
	err := r.q().QueryRowContext(ctx, "SELECT count(*) FROM records").Scan(&n)
	return n, err
}

// BlockCount is the number of stored blocks (commit + MST nodes + distinct records).
func (r *Repo) BlockCount(ctx context.Context) (int64, error) {
	var n int64
	err := r.q().QueryRowContext(ctx, "SELECT count(*) FROM blocks").Scan(&n)
	return n, err
}

// WriteCAR streams the repository as a CAR v1 whose root is the head commit: the commit,
// then the MST nodes depth-first with each record block right after its key (export.go). With since
// != "", only the blocks stored by commits with rev > since (getRepo?since=).
func (r *Repo) WriteCAR(ctx context.Context, w io.Writer, since string) error {
	bw := bufio.NewWriterSize(w, 32<<10) // a CAR is many small writes
	err := r.readSnapshot(ctx, func(tx *cachedTx) error {
		head, err := headRow(ctx, tx)
		if err != nil {
			return err
		}
		cw, err := car.NewWriter(bw, head.Commit)
		if err != nil {
			return err
		}
		if since != "" {
			return writeBlocksSince(ctx, tx, cw, since)
		}
		_, err = writeFullCAR(ctx, tx, cw, head)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func writeBlocksSince(ctx context.Context, tx querier, cw *car.Writer, since string) error {
	rows, err := tx.QueryContext(ctx, "SELECT cid, data FROM blocks WHERE rev > ? ORDER BY rev", since)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var cb, data []byte
		if err := rows.Scan(&cb, &data); err != nil {
			return err
		}
		c, err := cidFromBytes(cb)
		if err != nil {
			return err
		}
		if err := cw.Put(c, data); err != nil {
			return err
		}
	}
	return rows.Err()
}

func copyBlock(ctx context.Context, q querier, cw *car.Writer, c cid.Cid) error {
	data, err := getBlock(ctx, q, c)
	if err != nil {
		return err
	}
	return cw.Put(c, data)
}

// WriteRecordProof writes a CAR (root = head commit) proving the presence or absence of
// collection/rkey: the commit, the MST nodes on the key's path, and the record if present.
func (r *Repo) WriteRecordProof(ctx context.Context, w io.Writer, collection, rkey string) error {
	key := []byte(collection + "/" + rkey)
	return r.readSnapshot(ctx, func(tx *cachedTx) error {
		head, err := headRow(ctx, tx)
		if err != nil {
			return err
		}
		cw, err := car.NewWriter(w, head.Commit)
		if err != nil {
			return err
		}
		if err := copyBlock(ctx, tx, cw, head.Commit); err != nil {
			return err
		}
		c := head.Data
		for {
			data, err := getBlock(ctx, tx, c)
			if err != nil {
				return err
			}
			if err := cw.Put(c, data); err != nil {
				return err
			}
			nd, err := mst.NodeDataFromCBOR(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("decoding MST node %s: %w", c, err)
			}
			n := nd.Node(&c)
			// The key can only be in the subtree just left of the first greater key.
			var next *cid.Cid
		entries:
			for _, e := range n.Entries {
				if e.IsChild() {
					next = e.ChildCID
					continue
				}
				switch bytes.Compare(e.Key, key) {
				case 0:
					return copyBlock(ctx, tx, cw, *e.Value)
				case 1:
					break entries
				}
				next = nil
			}
			if next == nil {
				return nil // absence proven: no subtree can hold the key
			}
			c = *next
		}
	})
}

// WriteBlocks writes a CAR (root = head commit) of the given blocks, in order. If any is
// missing, nothing is written and the missing CIDs are returned.
func (r *Repo) WriteBlocks(ctx context.Context, w io.Writer, cids []cid.Cid) ([]cid.Cid, error) {
	var missing []cid.Cid
	err := r.readSnapshot(ctx, func(tx *cachedTx) error {
		for _, c := range cids {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM blocks WHERE cid = ?", c.Bytes()).Scan(&one) // not hot
			if errors.Is(err, sql.ErrNoRows) {
				missing = append(missing, c)
				continue
			}
			if err != nil {
				return err
			}
		}
		if len(missing) > 0 {
			return nil
		}
		head, err := headRow(ctx, tx)
		if err != nil {
			return err
		}
		cw, err := car.NewWriter(w, head.Commit)
		if err != nil {
			return err
		}
		for _, c := range cids {
			if err := copyBlock(ctx, tx, cw, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return missing, nil
}

// PendingEvents returns the outbox events with rev > afterRev, in rev order ("" = all).
func (r *Repo) PendingEvents(ctx context.Context, afterRev string) ([]*comatproto.SyncSubscribeRepos_Commit, error) {
	rows, err := r.q().QueryContext(ctx, sqlPendingEvents, afterRev)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*comatproto.SyncSubscribeRepos_Commit
	for rows.Next() {
		var rev string
		var data []byte
		if err := rows.Scan(&rev, &data); err != nil {
			return nil, err
		}
		ev := new(comatproto.SyncSubscribeRepos_Commit)
		if err := ev.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("outbox event %s: %w", rev, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// TrimOutbox deletes the outbox events with rev <= throughRev (already sequenced).
func (r *Repo) TrimOutbox(ctx context.Context, throughRev string) error {
	_, err := r.q().ExecContext(ctx, sqlTrimOutbox, throughRev)
	return err
}

// CommitBlock returns the head and its signed commit block, read in one snapshot (a #sync event carries
// exactly this block).
func (r *Repo) CommitBlock(ctx context.Context) (Head, []byte, error) {
	var head Head
	var data []byte
	err := r.readSnapshot(ctx, func(tx *cachedTx) error {
		var err error
		if head, err = headRow(ctx, tx); err != nil {
			return err
		}
		data, err = getBlock(ctx, tx, head.Commit)
		return err
	})
	if err != nil {
		return Head{}, nil, err
	}
	return head, data, nil
}

// RecordURI is the at:// URI of a record of did's repository.
func RecordURI(did syntax.DID, collection, rkey string) string {
	return "at://" + did.String() + "/" + collection + "/" + rkey
}
