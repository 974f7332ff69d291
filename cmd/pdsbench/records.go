package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/repo"
)

// The "1M-record repo" figure of issue 9 (docs/performance.md, "Large repositories (1M records)", "Over HTTP"):
// `pdsbench seed -records N` fills the first seeded account's repository, so the real binary can be measured
// writing into it over HTTP (`pdsbench -login`, scripts/big-repo.sh).

// seedRecordBase is the first filled record's TID time: 2023-01-01, one millisecond apart, so every record
// key is older than what a server writes today (new records go to the right of each collection).
var seedRecordBase = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// seedRecord is the i-th record of a filled repository: likes, posts and follows interleaved in time (TID
// rkeys increasing with i), 100–200 bytes of DAG-CBOR like the real ones; the same shapes as
// repo/bigrepo_bench_test.go's repository, so the two figures compare.
func seedRecord(i int) (repo.WriteOp, error) {
	rkey := syntax.NewTID(seedRecordBase+int64(i)*1000, 0)
	created := time.Unix(1_700_000_000+int64(i), 0).UTC().Format("2006-01-02T15:04:05.000Z")
	var coll syntax.NSID
	var rec map[string]any
	switch i % 10 {
	case 0, 1, 2:
		coll = "app.bsky.feed.post"
		rec = map[string]any{"$type": string(coll), "text": fmt.Sprintf("post number %d, with a few words of text", i), "createdAt": created}
	case 3, 4:
		coll = "app.bsky.graph.follow"
		rec = map[string]any{"$type": string(coll), "subject": fmt.Sprintf("did:plc:%024d", i), "createdAt": created}
	default:
		coll = "app.bsky.feed.like"
		rec = map[string]any{"$type": string(coll), "createdAt": created, "subject": map[string]any{
			"uri": fmt.Sprintf("at://did:plc:%024d/app.bsky.feed.post/%s", i, rkey),
			"cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
		}}
	}
	data, err := atdata.MarshalCBOR(rec)
	if err != nil {
		return repo.WriteOp{}, err
	}
	return repo.WriteOp{Action: repo.ActionCreate, Collection: coll, RKey: syntax.RecordKey(rkey.String()), Record: data}, nil
}

// fillRecords tops account i's repository up to n records (it returns how many it added), in commits of
// repo.MaxOps records signed with the account's own key, then announces the new head with one #sync — what
// the server does after an import — so the firehose log is not behind the repository and the next write's
// #commit chains on the #sync. The commits are not logged one by one: no consumer needs 5,000 #commit events
// to learn a repository the #sync tells it to fetch.
//
// While it writes, the account is marked for recovery, as the server's write path marks it: if the tool stops
// half-way, the server's start-up recovery announces whatever head the repository reached (and a rerun of the
// seed refuses the directory until a server has started and stopped on it once).
func (a *seeder) fillRecords(ctx context.Context, i, n int, progress io.Writer) (int, error) {
	handle := seedHandle(a.prefix, i, a.domain)
	acct, err := a.accounts.AccountByHandle(ctx, handle)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", handle, err)
	}
	key, err := acct.Signer()
	if err != nil {
		return 0, err
	}
	r, err := a.repos.Repo(ctx, acct.DID)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	have, err := r.RecordCount(ctx)
	if err != nil {
		return 0, err
	}
	if int(have) >= n {
		return 0, nil
	}
	if err := a.seq.MarkDirty(ctx, acct.DID); err != nil {
		return 0, err
	}
	start, next := time.Now(), int(have)
	for next < n {
		if err := ctx.Err(); err != nil {
			return next - int(have), err
		}
		ops := make([]repo.WriteOp, 0, repo.MaxOps)
		for j := next; j < min(n, next+repo.MaxOps); j++ {
			op, err := seedRecord(j)
			if err != nil {
				return next - int(have), err
			}
			ops = append(ops, op)
		}
		// DeferSync, as the server's writes: no fsync and no outbox row per commit (the #sync below replaces
		// the events); made durable by repos.Sync before the recovery mark goes.
		if _, err := r.Apply(ctx, repo.WriteRequest{Ops: ops, Signer: key, DeferSync: true}); err != nil {
			return next - int(have), fmt.Errorf("record %d: %w", next, err)
		}
		prev := next
		if next += len(ops); next/100_000 != prev/100_000 {
			fmt.Fprintf(progress, "seed: %s has %d/%d records (%.0f/s)\n", handle, next, n, float64(next-int(have))/time.Since(start).Seconds())
		}
	}
	added := next - int(have)
	head, blk, err := r.CommitBlock(ctx)
	if err != nil {
		return added, err
	}
	if err := <-a.seq.EnqueueSync(acct.DID, head.Rev, repo.SyncCAR(head.Commit, blk)); err != nil {
		return added, err
	}
	// The genesis commit's outbox row is superseded by the #sync (as in the server's resync after a lost log).
	if err := r.TrimOutbox(ctx, head.Rev); err != nil {
		return added, err
	}
	if err := a.repos.Sync(); err != nil {
		return added, err
	}
	return added, a.seq.ClearDirty(ctx, acct.DID)
}
