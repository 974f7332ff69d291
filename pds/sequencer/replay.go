package sequencer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// CommitsAfter returns the logged #commit events of did that come after the commit with rev afterRev, oldest
// first: the tail a repository lost when its unsynced writes were lost while their events were durable here
// (see repo.ReplayCommits). It reads the log backwards from the newest event and stops at the commit whose
// since is afterRev, so the cost is the log written since that commit, not the whole log. The result does
// not chain to afterRev when the log no longer holds the link (pruned) or a #sync replaced the repository
// in between; the caller checks the chain.
func (s *Sequencer) CommitsAfter(ctx context.Context, did syntax.DID, afterRev string) ([]*comatproto.SyncSubscribeRepos_Commit, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT type, frame FROM event WHERE did = ? ORDER BY seq DESC", did)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var newestFirst []*comatproto.SyncSubscribeRepos_Commit
	for rows.Next() {
		var typ string
		var frame []byte
		if err := rows.Scan(&typ, &frame); err != nil {
			return nil, err
		}
		if typ == TypeSync {
			break // the repository was replaced as a whole: nothing before it continues the chain
		}
		if typ != TypeCommit {
			continue
		}
		r := bytes.NewReader(frame)
		if _, _, err := ReadHeader(r); err != nil {
			return nil, err
		}
		var evt comatproto.SyncSubscribeRepos_Commit
		if err := evt.UnmarshalCBOR(r); err != nil {
			return nil, fmt.Errorf("logged #commit of %s: %w", did, err)
		}
		if evt.Rev <= afterRev {
			break
		}
		newestFirst = append(newestFirst, &evt)
		if evt.Since != nil && *evt.Since == afterRev {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*comatproto.SyncSubscribeRepos_Commit, len(newestFirst))
	for i, e := range newestFirst {
		out[len(out)-1-i] = e
	}
	return out, nil
}

// PruneNeeded reports whether Prune(before) would delete anything: the retention loop makes repositories
// durable (a file-system sync) only when events are about to go.
func (s *Sequencer) PruneNeeded(ctx context.Context, before time.Time) (bool, error) {
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT time FROM event ORDER BY seq LIMIT 1").Scan(&oldest); err != nil && err != sql.ErrNoRows {
		return false, err
	}
	return oldest.Valid && oldest.Int64 < before.UnixMilli(), nil
}
