package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
)

// Blobs is what the write path needs from the blob service: scheduling the blob collector when a commit or a
// replay may leave blobs unreferenced (*blobs.Service).
type Blobs interface {
	UnreferencedHook(did syntax.DID) (hook func(context.Context) error, release func())
	MarkReplayed(ctx context.Context, did syntax.DID) error
}

// Writer orders repository commits and firehose events. Its fields are set once, before the first write.
type Writer struct {
	Accounts *accountstore.Store
	Repos    *repo.Store
	Seq      *sequencer.Sequencer
	Blobs    Blobs
	Log      *slog.Logger
	// CheckCommit, when set, vets a commit's operations before anything is marked or locked (the server
	// refuses references to taken-down blobs); its error is the write's answer.
	CheckCommit func(ctx context.Context, did syntax.DID, ops []repo.WriteOp) error
	// Metrics, when set, is told each commit's outcome and latency.
	Metrics Metrics
}

// Metrics receives the write path's measurements (pds/metrics).
type Metrics interface {
	// Commit: a Commit call took d and ended with err (nil: acknowledged, durable and on the firehose).
	Commit(d time.Duration, err error)
}

// Import replaces an account's repository with the one in body (account migration; see repo.Store.Import),
// scheduling the blob collector for blobs the old repository used. The account is deactivated: nothing goes
// on the stream. Errors are the repo's (repo.ErrImport*), for the caller to map.
func (w *Writer) Import(ctx context.Context, did syntax.DID, body io.Reader, opts repo.ImportOptions) (*repo.ImportResult, error) {
	hook, release := w.Blobs.UnreferencedHook(did)
	defer release()
	opts.OnBlobsUnreferenced = hook
	return w.Repos.Import(ctx, did, body, opts)
}

// SyncEventBlocks returns a #sync event's blocks (a CAR holding only the account's head commit) and the head's
// rev, for announcing the repo as it is (activation). Errors are XRPC errors where the repo's have a mapping.
func (w *Writer) SyncEventBlocks(ctx context.Context, did syntax.DID) ([]byte, string, error) {
	r, err := w.Repos.Repo(ctx, did)
	if err != nil {
		return nil, "", xrpcerr.Repo(err)
	}
	defer r.Release()
	head, blk, err := r.CommitBlock(ctx)
	if err != nil {
		return nil, "", err
	}
	return repo.SyncCAR(head.Commit, blk), head.Rev, nil
}

// Commit applies writes to an account's repo: the one write path. The account is marked dirty in the
// sequencer before the repo commits, and the commit's event is queued while the repo lock is still held, so
// the firehose carries every commit in order (see docs/architecture.md). The repo transaction does not wait
// for fsync (repo.WriteRequest.DeferSync); the write is acknowledged once its event is durable in the log,
// whose group commit shares one fsync among every write in flight, to any account. The event is queued as
// soon as the commit is built (OnStaged), so the log's fsync overlaps the repo's transaction; it is
// published only once that transaction is over (EnqueueCommitGated). Start-up recovery replays logged
// commits a repo lost to power loss (recoverAccount); a repo whose transaction failed after its commit was
// logged is brought forward the same way before its next write (catchUp).
func (w *Writer) Commit(ctx context.Context, acct *accountstore.Account, ops []repo.WriteOp, swapCommit *cid.Cid) (*repo.CommitResult, error) {
	if w.Metrics == nil {
		return w.commit(ctx, acct, ops, swapCommit)
	}
	start := time.Now()
	res, err := w.commit(ctx, acct, ops, swapCommit)
	w.Metrics.Commit(time.Since(start), err)
	return res, err
}

func (w *Writer) commit(ctx context.Context, acct *accountstore.Account, ops []repo.WriteOp, swapCommit *cid.Cid) (*repo.CommitResult, error) {
	key, err := acct.Signer()
	if err != nil {
		return nil, fmt.Errorf("account signing key: %w", err)
	}
	if w.CheckCommit != nil {
		if err := w.CheckCommit(ctx, acct.DID, ops); err != nil {
			return nil, err
		}
	}
	if err := w.Seq.MarkDirty(ctx, acct.DID); err != nil {
		return nil, err
	}
	r, err := w.Repos.Repo(ctx, acct.DID)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	onUnref, releaseUnref := w.Blobs.UnreferencedHook(acct.DID) // schedules blob GC
	defer releaseUnref()
	var logged <-chan error
	req := repo.WriteRequest{
		Ops:               ops,
		SwapCommit:        swapCommit,
		Signer:            key,
		TrimOutboxThrough: w.Seq.SequencedRev(acct.DID),
		OnStaged: func(res *repo.CommitResult) func(error) {
			gate := make(chan struct{})
			logged = w.Seq.EnqueueCommitGated(res.Event, gate)
			return func(error) { close(gate) }
		},
		OnBlobsUnreferenced: onUnref,
		DeferSync:           true,
	}
	res, err := r.Apply(ctx, req)
	if errors.Is(err, repo.ErrBehind) {
		if err := w.catchUp(ctx, r, acct.DID); err != nil {
			return nil, err
		}
		logged = nil
		res, err = r.Apply(ctx, req)
	}
	if err != nil {
		if logged != nil {
			// The commit was logged but the repo transaction failed: the log is the truth. Bring the repo
			// forward now (the write still answers with the error: its outcome was not known in time).
			if lerr := <-logged; lerr == nil {
				if cerr := w.catchUp(ctx, r, acct.DID); cerr != nil {
					w.Log.Error("repo behind the firehose log; its next write retries", "did", acct.DID, "err", cerr)
				}
			}
		}
		return nil, xrpcerr.Repo(err)
	}
	if logged != nil {
		// Waited for after the repo lock is released, so the account's next writes group-commit meanwhile.
		if err := <-logged; err != nil {
			return nil, fmt.Errorf("logging commit %s: %w", res.Rev, err)
		}
	}
	return res, nil
}

// catchUp replays into r the logged commits it does not have (a transaction that failed after its commit was
// logged): repo.ErrBehind until it has.
func (w *Writer) catchUp(ctx context.Context, r *repo.Repo, did syntax.DID) error {
	if err := w.Seq.Flush(ctx); err != nil {
		return err
	}
	head, err := r.Head(ctx)
	if err != nil {
		return err
	}
	events, err := w.Seq.CommitsAfter(ctx, did, head.Rev)
	if err != nil {
		return err
	}
	n, err := r.ReplayCommits(ctx, events)
	if err != nil {
		return fmt.Errorf("replaying logged commits into the repo: %w", err)
	}
	if n > 0 {
		w.Log.Warn("repo brought forward to the firehose log after a failed transaction", "did", did, "commits", n)
		if err := w.Blobs.MarkReplayed(ctx, did); err != nil {
			return err
		}
	}
	return nil
}

// Recover runs at start, before any write: every commit that reached a repo but not the firehose
// (the process died in between) is sequenced now, in commit order.
func (w *Writer) Recover(ctx context.Context) error {
	dirty, err := w.Seq.Dirty(ctx)
	if err != nil {
		return err
	}
	recovered := 0
	dids := make([]syntax.DID, 0, len(dirty))
	for _, d := range dirty {
		n, err := w.recoverAccount(ctx, d)
		if err != nil {
			return fmt.Errorf("%s: %w", d.DID, err)
		}
		recovered += n
		dids = append(dids, d.DID)
	}
	// What the repos hold now may still be only in the page cache (the previous process died, the machine did
	// not): make it durable before unmarking, or power loss could take commits no recovery would look for.
	if len(dids) > 0 {
		if err := w.Repos.Sync(); err != nil {
			return err
		}
		if err := w.Seq.ClearDirty(ctx, dids...); err != nil {
			return err
		}
	}
	if recovered > 0 {
		w.Log.Warn("firehose recovery: sequenced commits that were in repos but not on the stream", "commits", recovered)
	}
	return nil
}

// recoverAccount sequences one dirty account's unsequenced commits. A signup interrupted after its repo was
// created is finished or undone here: without an account row the repo is removed (the signup never
// answered); with one, its genesis commit goes out with the events a signup emits around it (identity,
// account, commit, sync), exactly as if the process had not died.
func (w *Writer) recoverAccount(ctx context.Context, d sequencer.DirtyAccount) (int, error) {
	acct, err := w.Accounts.AccountByDID(ctx, d.DID)
	if errors.Is(err, accountstore.ErrNotFound) {
		if err := w.Repos.Delete(ctx, d.DID); err != nil && !errors.Is(err, repo.ErrRepoNotFound) {
			return 0, err
		}
		return 0, w.Seq.Forget(ctx, d.DID)
	}
	if err != nil {
		return 0, err
	}
	r, err := w.Repos.Repo(ctx, d.DID)
	if errors.Is(err, repo.ErrRepoNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer r.Release()
	head, err := r.Head(ctx)
	if err != nil {
		return 0, err
	}
	if d.LastRev > head.Rev {
		if err := w.replayLostCommits(ctx, r, acct, d.LastRev, head); err != nil {
			return 0, err
		}
	}
	events, err := r.PendingEvents(ctx, d.LastRev)
	if err != nil {
		return 0, err
	}
	// Queued in rev order, then awaited together: one group commit, not one fsync per event.
	var done []<-chan error
	for _, evt := range events {
		genesis := evt.Since == nil
		if genesis {
			done = append(done, w.Seq.EnqueueIdentity(acct.DID, acct.Handle), w.Seq.EnqueueAccount(acct.DID, acct.Active(), acct.Status()))
		}
		done = append(done, w.Seq.EnqueueCommit(evt))
		if genesis {
			done = append(done, w.Seq.EnqueueSync(acct.DID, evt.Rev, (&repo.CommitResult{Commit: cid.Cid(evt.Commit), Event: evt}).SyncCAR()))
		}
	}
	logged := d.LastRev
	if len(events) > 0 {
		logged = events[len(events)-1].Rev
	}
	// Commits stored with DeferSync have no outbox row: if the process died after the repo stored one and
	// before the log did (the write was never acknowledged), the repo is ahead of the stream with no event
	// to send. Its head is announced with #sync, so consumers fetch the repo instead of breaking on the chain.
	if head, err := r.Head(ctx); err != nil {
		return 0, err
	} else if head.Rev > logged {
		_, blk, err := r.CommitBlock(ctx)
		if err != nil {
			return 0, err
		}
		w.Log.Warn("recovery: the repo has commits the firehose never got (not acknowledged); announcing its head with #sync",
			"did", acct.DID, "repo_rev", head.Rev, "log_rev", logged)
		done = append(done, w.Seq.EnqueueSync(acct.DID, head.Rev, repo.SyncCAR(head.Commit, blk)))
	}
	for _, ch := range done {
		if err := <-ch; err != nil {
			return 0, err
		}
	}
	if logged != "" {
		err = r.TrimOutbox(ctx, logged)
	}
	return len(events), err
}

// replayLostCommits brings a repo that is behind the log (power loss took its unsynced tail after the
// commits' events were durable and acknowledged) forward by replaying the logged commits. If the log cannot
// give the missing chain (pruned, which the retention loop's Sync prevents), the repo's head is announced with
// #sync so consumers resynchronize instead of waiting for a commit that chains to what was lost.
func (w *Writer) replayLostCommits(ctx context.Context, r *repo.Repo, acct *accountstore.Account, lastRev string, head repo.Head) error {
	events, err := w.Seq.CommitsAfter(ctx, acct.DID, head.Rev)
	if err != nil {
		return err
	}
	n, err := r.ReplayCommits(ctx, events)
	if err == nil && n > 0 {
		if merr := w.Blobs.MarkReplayed(ctx, acct.DID); merr != nil {
			w.Log.Error("recovery: scheduling the blob GC after a replay", "did", acct.DID, "err", merr)
		}
	}
	if err == nil {
		if now, herr := r.Head(ctx); herr == nil && now.Rev == lastRev {
			w.Log.Warn("recovery: replayed commits the repo lost from the firehose log", "did", acct.DID, "commits", n, "rev", lastRev)
			return nil
		}
		err = fmt.Errorf("%w: the log does not reach %s", repo.ErrReplayGap, lastRev)
	}
	w.Log.Error("recovery: the repo is behind the firehose log and the log cannot replay it; announcing its head with #sync",
		"did", acct.DID, "repo_rev", head.Rev, "log_rev", lastRev, "err", err)
	now, blk, err := r.CommitBlock(ctx)
	if err != nil {
		return err
	}
	return <-w.Seq.EnqueueSync(acct.DID, now.Rev, repo.SyncCAR(now.Commit, blk))
}

// ResyncAfterLostLog runs when sequencer.sqlite was lost while accounts exist. Whatever the old log held (and
// whatever the outboxes still held unsequenced) is gone from the stream, so every active account's current
// head is announced with #sync: a relay then re-fetches the repo instead of waiting for a commit that chains
// to something it never saw. This is the one start-up path that visits every account.
func (w *Writer) ResyncAfterLostLog(ctx context.Context) error {
	cursor, n := "", 0
	for {
		accts, err := w.Accounts.ListAccounts(ctx, cursor, 500)
		if err != nil {
			return err
		}
		if len(accts) == 0 {
			break
		}
		var done []<-chan error
		for _, a := range accts {
			cursor = a.DID.String()
			if !a.Active() {
				continue
			}
			r, err := w.Repos.Repo(ctx, a.DID)
			if errors.Is(err, repo.ErrRepoNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			head, commitBlock, err := r.CommitBlock(ctx)
			if err == nil {
				err = r.TrimOutbox(ctx, head.Rev) // superseded by the #sync
			}
			r.Release()
			if err != nil {
				return err
			}
			done = append(done, w.Seq.EnqueueSync(a.DID, head.Rev, repo.SyncCAR(head.Commit, commitBlock)))
			n++
		}
		for _, ch := range done {
			if err := <-ch; err != nil {
				return err
			}
		}
	}
	w.Log.Warn("firehose log was rebuilt: announced every active account's head with #sync", "accounts", n)
	return nil
}

// ReleaseDirtyMarks clears the recovery mark of every account whose repo head is the last rev on the stream.
// Only for a clean stop, after every writer is gone; any account still behind keeps its mark.
func (w *Writer) ReleaseDirtyMarks(ctx context.Context) error {
	if err := w.Seq.Flush(ctx); err != nil {
		return err
	}
	var clean []syntax.DID
	for _, did := range w.Seq.DirtyDIDs() {
		last, err := w.Seq.LastRev(ctx, did)
		if err != nil {
			return err
		}
		var head repo.Head
		err = w.Repos.With(ctx, did, func(r *repo.Repo) error {
			var err error
			head, err = r.Head(ctx)
			return err
		})
		switch {
		case errors.Is(err, repo.ErrRepoNotFound):
			clean = append(clean, did)
		case err != nil:
			return err
		case head.Rev == last:
			clean = append(clean, did)
		}
	}
	if len(clean) == 0 {
		return nil
	}
	// Commits were stored without fsync (DeferSync): durable before nothing would replay them.
	if err := w.Repos.Sync(); err != nil {
		return err
	}
	return w.Seq.ClearDirty(ctx, clean...)
}
