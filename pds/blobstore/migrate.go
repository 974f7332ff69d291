package blobstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// MigrateOptions tunes Migrate.
type MigrateOptions struct {
	// Verify re-reads and re-hashes blobs that are already at the destination; without it, a blob already there
	// with the right size is skipped (so an interrupted migration resumes quickly).
	Verify bool
	// Concurrency is the number of blobs copied at once (default 4: object stores are latency-bound).
	Concurrency int
	// Progress, if set, is called after each blob (from one goroutine at a time).
	Progress func(MigrateProgress)
}

// MigrateProgress counts a migration in progress.
type MigrateProgress struct {
	Total      int   // blobs in the source
	TotalBytes int64 // their size
	Done       int   // blobs handled (copied, skipped or failed)
	DoneBytes  int64
	Copied     int
	Skipped    int // already at the destination
	Failed     int
}

// MigrateFailure is a blob that could not be copied; the migration goes on without it.
type MigrateFailure struct {
	Entry Entry
	Err   error
}

// ErrCorrupt: a source blob's content does not hash to its CID. It is not copied.
var ErrCorrupt = errors.New("content does not match its CID")

// Migrate copies every blob of src (quarantined ones stay quarantined) to dst, verifying that each copied blob
// hashes to its CID. It can be interrupted and run again: blobs already at the destination are skipped. Blobs
// that fail are reported and skipped; the error is for failures of the listing itself or a cancelled ctx.
func Migrate(ctx context.Context, src, dst Backend, opts MigrateOptions) (MigrateProgress, []MigrateFailure, error) {
	var p MigrateProgress
	// Count first (a second listing is cheaper than holding a million entries), for the progress bar.
	if err := src.List(ctx, func(e Entry) error {
		p.Total++
		p.TotalBytes += e.Size
		return nil
	}); err != nil {
		return p, nil, err
	}
	if opts.Progress != nil {
		opts.Progress(p)
	}
	workers := opts.Concurrency
	if workers <= 0 {
		workers = 4
	}
	var (
		mu       sync.Mutex
		failures []MigrateFailure
		wg       sync.WaitGroup
	)
	jobs := make(chan Entry)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				copied, err := migrateOne(ctx, src, dst, e, opts.Verify)
				mu.Lock()
				p.Done++
				p.DoneBytes += e.Size
				switch {
				case err != nil:
					p.Failed++
					failures = append(failures, MigrateFailure{Entry: e, Err: err})
				case copied:
					p.Copied++
				default:
					p.Skipped++
				}
				if opts.Progress != nil {
					opts.Progress(p)
				}
				mu.Unlock()
			}
		}()
	}
	listErr := src.List(ctx, func(e Entry) error {
		select {
		case jobs <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if listErr == nil {
		listErr = ctx.Err()
	}
	return p, failures, listErr
}

// migrateOne copies e unless the destination has it already; copied reports whether it wrote anything.
func migrateOne(ctx context.Context, src, dst Backend, e Entry, verify bool) (copied bool, err error) {
	present, err := destinationHas(ctx, dst, e, verify)
	if err != nil || present {
		return false, err
	}
	var obj Object
	if e.Quarantined {
		obj, err = src.OpenQuarantined(ctx, e.DID, e.CID)
	} else {
		obj, err = src.Open(ctx, e.DID, e.CID)
	}
	if err != nil {
		return false, err
	}
	defer obj.Close()
	t, err := Put(ctx, dst, obj, obj.Size(), -1)
	if err != nil {
		return false, err
	}
	if !t.CID.Equals(e.CID) {
		dst.DeleteTemp(ctx, t.Key)
		return false, fmt.Errorf("%w (hashes to %s)", ErrCorrupt, t.CID)
	}
	if err := dst.Promote(ctx, t.Key, e.DID, e.CID); err != nil {
		dst.DeleteTemp(ctx, t.Key)
		return false, err
	}
	if e.Quarantined {
		if err := dst.Quarantine(ctx, e.DID, e.CID); err != nil {
			return true, err
		}
	}
	return true, nil
}

// destinationHas reports whether dst already holds e, complete (and with verify, hashing to its CID).
func destinationHas(ctx context.Context, dst Backend, e Entry, verify bool) (bool, error) {
	var obj Object
	var err error
	if e.Quarantined {
		obj, err = dst.OpenQuarantined(ctx, e.DID, e.CID)
		if errors.Is(err, ErrNotFound) {
			// Copied but not yet quarantined when a previous run stopped?
			obj, err = dst.Open(ctx, e.DID, e.CID)
		}
	} else {
		obj, err = dst.Open(ctx, e.DID, e.CID)
	}
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer obj.Close()
	if obj.Size() != e.Size {
		return false, nil
	}
	if verify {
		hr := &hashingReader{r: obj, h: newHash(), limit: -1, size: -1}
		if _, err := copyBuffered(discard{}, hr); err != nil {
			return false, err
		}
		if !CIDForHash(hr.h.Sum(nil)).Equals(e.CID) {
			return false, nil
		}
	}
	if e.Quarantined {
		// Finish what a previous run may have left half done (no-op when already quarantined).
		if err := dst.Quarantine(ctx, e.DID, e.CID); err != nil {
			return false, err
		}
	}
	return true, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
