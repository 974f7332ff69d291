package sequencer

import (
	"context"
	"database/sql"
	"net/url"
)

// ChangedSince reads a copy of the log that no sequencer has open (a backup's snapshot): the highest seq ever
// assigned, the accounts with events after seq after, and those marked dirty (writing since the last clean
// start, or a signup in progress). Backups copy only the accounts that changed. complete is false when
// retention already pruned events after after (the caller must then treat every account as changed).
func ChangedSince(ctx context.Context, path string, after int64) (head int64, dids, dirty []string, complete bool, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"mode": {"ro"}}.Encode())
	if err != nil {
		return 0, nil, nil, false, err
	}
	defer db.Close()
	var metaHead, maxSeq sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'head'").Scan(&metaHead); err != nil && err != sql.ErrNoRows {
		return 0, nil, nil, false, err
	}
	if err := db.QueryRowContext(ctx, "SELECT max(seq) FROM event").Scan(&maxSeq); err != nil {
		return 0, nil, nil, false, err
	}
	head = max(metaHead.Int64, maxSeq.Int64)
	var oldest sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT min(seq) FROM event").Scan(&oldest); err != nil {
		return 0, nil, nil, false, err
	}
	// Complete when no event after `after` can have been pruned: the oldest kept one is at most after+1, or
	// nothing was assigned since.
	complete = head <= after || (oldest.Valid && oldest.Int64 <= after+1)
	if dids, err = queryStrings(ctx, db, "SELECT DISTINCT did FROM event WHERE seq > ?", after); err != nil {
		return 0, nil, nil, false, err
	}
	if dirty, err = queryStrings(ctx, db, "SELECT did FROM repo_state WHERE dirty = 1"); err != nil {
		return 0, nil, nil, false, err
	}
	return head, dids, dirty, complete, nil
}

func queryStrings(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}
