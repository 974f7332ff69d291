package accountstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// AccountsDueForDeletion lists up to limit deactivated accounts whose deleteAfter is at or before now.
func (s *Store) AccountsDueForDeletion(ctx context.Context, now time.Time, limit int) ([]syntax.DID, error) {
	// Stored times are RFC 3339 text whose fractional part varies in length, so text order is only right to
	// the second: select generously, then compare parsed times.
	bound := now.Add(time.Second).UTC().Format(timeFormat)
	rows, err := s.db.QueryContext(ctx, `SELECT did, delete_after FROM account
		WHERE delete_after IS NOT NULL AND delete_after <= ? AND deactivated_at IS NOT NULL
		ORDER BY delete_after LIMIT ?`, bound, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var dids []syntax.DID
	for rows.Next() {
		var did syntax.DID
		var after sql.NullString
		if err := rows.Scan(&did, &after); err != nil {
			return nil, err
		}
		if t := parseTime(after); t != nil && !t.After(now) {
			dids = append(dids, did)
		}
	}
	return dids, rows.Err()
}
