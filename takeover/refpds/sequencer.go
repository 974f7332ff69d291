package refpds

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"time"
)

// Event is a row of sequencer.sqlite's repo_seq. Body is the event's DAG-CBOR without seq and time (those are
// the row's): a commit {repo, commit, rev, since, blocks, ops, prevData, rebase, tooBig, blobs}, a sync
// {did, rev, blocks}, an identity {did, handle?}, an account {did, active, status?}.
type Event struct {
	Seq            int64
	DID            string
	Type           string // the reference's eventType: append (a commit), sync, identity, account; older ones: rebase, handle, migrate, tombstone
	Body           []byte
	SequencedAt    time.Time
	SequencedAtRaw string // as stored, the firehose's time field
}

// SeqHead returns the highest seq the reference assigned (0 if none).
func (d *Dir) SeqHead(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := d.seq.QueryRowContext(ctx, "SELECT max(seq) FROM repo_seq").Scan(&n); err != nil {
		return 0, fmt.Errorf("sequencer.sqlite: %w", err)
	}
	return n.Int64, nil
}

// CountEvents counts the events sequenced at or after since, and the invalidated ones among them (which the
// reference never sends).
func (d *Dir) CountEvents(ctx context.Context, since time.Time) (total, invalidated int64, err error) {
	err = d.seq.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(invalidated != 0), 0) FROM repo_seq WHERE sequencedAt >= ?",
		since.UTC().Format("2006-01-02T15:04:05.000Z")).Scan(&total, &invalidated)
	if err != nil {
		err = fmt.Errorf("sequencer.sqlite: %w", err)
	}
	return total, invalidated, err
}

// Events yields the valid (not invalidated) events sequenced at or after since, in seq order, as the
// reference's subscribeRepos would replay them to a cursor inside its backfill window.
func (d *Dir) Events(ctx context.Context, since time.Time) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		// sequencedAt is the reference's ISO string (always UTC with milliseconds), so text order is time order.
		rows, err := d.seq.QueryContext(ctx, `SELECT seq, did, eventType, event, sequencedAt FROM repo_seq
			WHERE sequencedAt >= ? AND invalidated = 0 ORDER BY seq`, since.UTC().Format("2006-01-02T15:04:05.000Z"))
		if err != nil {
			yield(nil, fmt.Errorf("sequencer.sqlite: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var e Event
			if err := rows.Scan(&e.Seq, &e.DID, &e.Type, &e.Body, &e.SequencedAtRaw); err != nil {
				yield(nil, fmt.Errorf("sequencer.sqlite: %w", err))
				return
			}
			if err := parseInto(&e.SequencedAt, e.SequencedAtRaw); err != nil {
				yield(nil, fmt.Errorf("sequencer.sqlite: seq %d: %w", e.Seq, err))
				return
			}
			if !yield(&e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, fmt.Errorf("sequencer.sqlite: %w", err))
		}
	}
}
