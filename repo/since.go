package repo

import (
	"context"
	"database/sql"
	"strings"
)

// RevRecord is a record with the rev of the commit that last wrote it.
type RevRecord struct {
	Record
	Rev string
}

// RecordsSince returns up to limit records of the given collections (all when none are given) last written by
// a commit newer than rev, oldest first: what a service that has seen the repo up to rev has not seen yet
// (read-after-write). It returns none when no record at all is as old as rev: such a rev does not come from
// this repo's history (an account imported here, say), and every record would look new.
func (r *Repo) RecordsSince(ctx context.Context, rev string, limit int, collections ...string) ([]RevRecord, error) {
	if limit <= 0 {
		limit = defaultListLimit
	}
	var out []RevRecord
	err := r.readTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT r.collection, r.rkey, r.cid, r.rev, b.data FROM records r JOIN blocks b ON b.cid = r.cid
			WHERE r.rev > ?`
		args := []any{rev}
		if len(collections) > 0 {
			q += " AND r.collection IN (?" + strings.Repeat(", ?", len(collections)-1) + ")"
			for _, c := range collections {
				args = append(args, c)
			}
		}
		q += " ORDER BY r.rev, r.collection, r.rkey LIMIT ?"
		args = append(args, limit)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rec RevRecord
			var cb []byte
			if err := rows.Scan(&rec.Collection, &rec.RKey, &cb, &rec.Rev, &rec.Value); err != nil {
				return err
			}
			if rec.CID, err = cidFromBytes(cb); err != nil {
				return err
			}
			out = append(out, rec)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		var one int
		err = tx.QueryRowContext(ctx, "SELECT 1 FROM records WHERE rev <= ? LIMIT 1", rev).Scan(&one)
		if err == sql.ErrNoRows {
			out = nil
			return nil
		}
		return err
	})
	return out, err
}
