package blobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/internal/keyedmutex"
	"github.com/pdsgo/pds/pds/blobgc"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
)

// Blobs: the bytes are in a blobstore.Backend, the metadata (MIME type, size, temporary or referenced, which
// records use a blob) in each account's repository database, and blobgc.sqlite lists the accounts with blobs to
// delete. Who changes what, and in which order, so that a crash anywhere leaves nothing inconsistent:
//
//   - upload (pds/handle_blob.go): stream into a temporary object while hashing; mark the account in the GC list;
//     under the blob's lock: BeginBlob (a new row is "uploading"), promote the bytes, FinishBlob (ready). A crash
//     leaves at worst an uploading row, which expires like an unused upload, or a temporary object, which
//     CleanTemp removes.
//   - record writes (repo.Apply): references are checked under the repository's write lock and linked in the
//     commit's transaction; a commit that leaves a blob unreferenced marks the account in the GC list inside that
//     transaction (OnBlobsUnreferenced), before it commits.
//   - collection (collectDue): due blobs are claimed ("deleting": no record may reference them any more), then,
//     under each blob's lock, the bytes are deleted and the row after them. A crash in between leaves a
//     "deleting" row, claimed again next time.
//
// The blob lock serializes an upload and a deletion of the same blob, the only two operations that touch the
// same bytes.

const (
	// tempObjectMaxAge: a temporary object older than this is left from a crash (a live upload keeps writing
	// its file, and its object on S3 exists only once complete and is promoted at once).
	tempObjectMaxAge = time.Hour
	gcBatch          = 100
	gcMaxSleep       = time.Minute
	gcRetry          = time.Minute
)

// Service holds the blob store, the GC list and the locks that order uploads and deletions.
type Service struct {
	store  blobstore.Backend
	queue  *blobgc.Queue
	repos  *repo.Store
	log    *slog.Logger
	limit  int64
	expiry time.Duration
	grace  time.Duration

	locks keyedmutex.Map[blobKey]
	wake  chan struct{} // a mark asks the collector to look now

	mu       sync.Mutex
	inflight map[syntax.DID]int // per DID: marks whose repository change has not finished
}

// Options configure a Service.
type Options struct {
	Store  blobstore.Backend
	Repos  *repo.Store
	Log    *slog.Logger
	Limit  int64         // largest upload, in bytes
	Expiry time.Duration // an upload no record references is deleted after this
	Grace  time.Duration // a blob a commit left unreferenced is deleted after this
}

// Open opens the GC list (blobgc.sqlite in dataDir). The caller runs the collector (Run).
func Open(ctx context.Context, dataDir string, opts Options) (*Service, error) {
	q, err := blobgc.Open(ctx, filepath.Join(dataDir, "blobgc.sqlite"))
	if err != nil {
		return nil, err
	}
	return &Service{
		store:    opts.Store,
		queue:    q,
		repos:    opts.Repos,
		log:      opts.Log,
		limit:    opts.Limit,
		expiry:   opts.Expiry,
		grace:    opts.Grace,
		wake:     make(chan struct{}, 1),
		inflight: map[syntax.DID]int{},
	}, nil
}

// Close closes the GC list; nil-safe (a server that failed to start).
func (b *Service) Close() {
	if b != nil && b.queue != nil {
		b.queue.Close()
	}
}

// Store is the blob store in use.
func (b *Service) Store() blobstore.Backend { return b.store }

// Limit is the largest upload, in bytes.
func (b *Service) Limit() int64 { return b.limit }

// Expiry is how long an upload no record references is kept.
func (b *Service) Expiry() time.Duration { return b.expiry }

// Lock takes the lock of one account's blob, which serializes its upload and its deletion.
func (b *Service) Lock(did syntax.DID, c cid.Cid) (unlock func()) {
	return b.locks.Lock(blobKey{did, c})
}

// Mark durably notes that did will have blob work due at due, before the change that creates it; release must
// be called once that change is over (committed or not).
func (b *Service) Mark(ctx context.Context, did syntax.DID, due time.Time) (release func(), err error) {
	b.mu.Lock()
	b.inflight[did]++
	b.mu.Unlock()
	release = func() {
		b.mu.Lock()
		if b.inflight[did]--; b.inflight[did] <= 0 {
			delete(b.inflight, did)
		}
		b.mu.Unlock()
	}
	if err := b.queue.Mark(ctx, did, due); err != nil {
		release()
		return nil, err
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return release, nil
}

func (b *Service) busy(did syntax.DID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inflight[did] > 0
}

// UnreferencedHook is the repo.WriteRequest.OnBlobsUnreferenced of did's commits. The returned release must be
// called after the commit.
func (b *Service) UnreferencedHook(did syntax.DID) (hook func(context.Context) error, release func()) {
	var rel func()
	hook = func(ctx context.Context) error {
		if rel != nil {
			return nil
		}
		r, err := b.Mark(ctx, did, time.Now().Add(b.grace))
		rel = r
		return err
	}
	release = func() {
		if rel != nil {
			rel()
		}
	}
	return hook, release
}

// MarkReplayed schedules the collector for an account after commits were replayed into its repo: a replay has
// no OnBlobsUnreferenced hook, and one of its commits may have left a blob unreferenced (the collector finds
// nothing to do otherwise).
func (b *Service) MarkReplayed(ctx context.Context, did syntax.DID) error {
	release, err := b.Mark(ctx, did, time.Now().Add(b.grace))
	if err == nil {
		release()
	}
	return err
}

// Run is the collector: it collects what is due, then sleeps until the next due time (at most gcMaxSleep), a
// mark, or the server stopping.
func (b *Service) Run(quit <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-quit
		cancel()
	}()
	var lastClean time.Time
	for ctx.Err() == nil {
		more := b.collectDue(ctx)
		if time.Since(lastClean) > tempObjectMaxAge {
			lastClean = time.Now()
			if n, err := b.store.CleanTemp(ctx, lastClean.Add(-tempObjectMaxAge)); err != nil && ctx.Err() == nil {
				b.log.Warn("blobs: cleaning temporary objects", "err", err)
			} else if n > 0 {
				b.log.Info("blobs: removed temporary objects left by interrupted uploads", "count", n)
			}
		}
		wait := gcMaxSleep
		if more {
			wait = 0
		} else if next, ok, err := b.queue.NextDue(ctx); err == nil && ok {
			wait = min(wait, max(0, time.Until(next)))
		}
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-quit:
		case <-b.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// collectDue collects the accounts whose work is due; more reports a full batch (look again at once).
func (b *Service) collectDue(ctx context.Context) (more bool) {
	due, err := b.queue.Due(ctx, time.Now(), gcBatch)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Error("blobs: reading the GC list", "err", err)
		}
		return false
	}
	for _, e := range due {
		if ctx.Err() != nil {
			return false
		}
		b.collectAccount(ctx, e)
	}
	return len(due) == gcBatch
}

// collectAccount deletes the due blobs of one account and schedules its next look.
func (b *Service) collectAccount(ctx context.Context, e blobgc.Entry) {
	retry := func(err error) {
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("blobs: collection failed; will retry", "did", e.DID, "err", err)
		b.queue.Postpone(ctx, e.DID, time.Now().Add(gcRetry))
	}
	r, err := b.repos.Repo(ctx, e.DID)
	if errors.Is(err, repo.ErrRepoNotFound) {
		b.queue.Done(ctx, e, time.Time{}, false) // account deleted, and its blobs with it
		return
	}
	if err != nil {
		retry(err)
		return
	}
	defer r.Release()
	deleted := 0
	for {
		cids, err := r.ClaimDueBlobs(ctx, time.Now(), b.expiry, b.grace, gcBatch)
		if err != nil {
			retry(err)
			return
		}
		for _, c := range cids {
			if err := b.deleteClaimed(ctx, r, e.DID, c); err != nil {
				retry(fmt.Errorf("deleting blob %s: %w", c, err))
				return
			}
			deleted++
		}
		if len(cids) < gcBatch {
			break
		}
	}
	if deleted > 0 {
		b.log.Info("blobs: deleted unused blobs", "did", e.DID, "count", deleted)
	}
	// Read "busy" before the next due time: a change still in flight now may commit after the read below, so
	// its mark must stay; one that starts later marks again (a new gen) and Done leaves the row alone.
	busy := b.busy(e.DID)
	next, pending, err := r.NextBlobDue(ctx, b.expiry, b.grace)
	if err != nil {
		retry(err)
		return
	}
	if busy {
		soon := time.Now().Add(time.Second)
		if !pending || next.After(soon) {
			next = soon
		}
		pending = true
	}
	if err := b.queue.Done(ctx, e, next, pending); err != nil {
		retry(err)
	}
}

// deleteClaimed deletes the bytes of a claimed blob, then its row, unless an upload revived it meanwhile.
func (b *Service) deleteClaimed(ctx context.Context, r *repo.Repo, did syntax.DID, c cid.Cid) error {
	unlock := b.Lock(did, c)
	defer unlock()
	row, err := r.GetBlob(ctx, c)
	if errors.Is(err, repo.ErrBlobNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if row.State != repo.BlobDeleting {
		return nil
	}
	if err := b.store.Delete(ctx, did, c); err != nil {
		return err
	}
	return r.FinishBlobDelete(ctx, c)
}

// SetQuarantine moves a blob's bytes out of reach (takedown) or back. The admin API records the takedown
// itself (setBlobTakedown) and calls this; a blob the store does not have is not an error.
func (b *Service) SetQuarantine(ctx context.Context, did syntax.DID, c cid.Cid, quarantined bool) error {
	unlock := b.Lock(did, c)
	defer unlock()
	var err error
	if quarantined {
		err = b.store.Quarantine(ctx, did, c)
	} else {
		err = b.store.Restore(ctx, did, c)
	}
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil
	}
	return err
}

// DeleteAccountBlobs deletes every blob of an account (account deletion, after its repository is gone).
func (b *Service) DeleteAccountBlobs(ctx context.Context, did syntax.DID) error {
	return b.store.DeleteAll(ctx, did)
}

// blobKey names one account's blob (its lock).
type blobKey struct {
	did syntax.DID
	cid cid.Cid
}
