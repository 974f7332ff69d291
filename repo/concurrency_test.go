package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	// A tiny LRU: repositories are evicted while other goroutines still use them.
	s := newTestStore(t, StoreOptions{MaxOpenRepos: 2})
	key := newKey(t)
	const repos, writersPerRepo, writes = 5, 3, 15
	dids := make([]syntax.DID, repos)
	for i := range dids {
		dids[i] = syntax.DID(fmt.Sprintf("did:plc:conc%d", i))
		if _, err := s.Create(ctx, dids[i], key); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, repos*writersPerRepo*2)
	for _, did := range dids {
		for w := range writersPerRepo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range writes {
					err := s.With(ctx, did, func(r *Repo) error {
						_, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create(fmt.Sprintf("w%d-%03d", w, i), "x", t)}, Signer: key})
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // a reader racing the writers
			defer wg.Done()
			for range writes {
				err := s.With(ctx, did, func(r *Repo) error {
					if _, err := r.Head(ctx); err != nil {
						return err
					}
					if _, _, err := r.ListRecords(ctx, postNSID.String(), 5, "", false); err != nil {
						return err
					}
					return r.WriteCAR(ctx, io.Discard, "")
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, did := range dids {
		err := s.With(ctx, did, func(r *Repo) error {
			if n, _ := r.RecordCount(ctx); n != writersPerRepo*writes {
				return fmt.Errorf("%s: %d records", did, n)
			}
			assertExactBlocks(t, r)
			// The outbox is an unbroken since-chain.
			evs, err := r.PendingEvents(ctx, "")
			if err != nil {
				return err
			}
			if len(evs) != 1+writersPerRepo*writes {
				return fmt.Errorf("%d events", len(evs))
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Since == nil || *evs[i].Since != evs[i-1].Rev || cid.Cid(*evs[i].PrevData) == cid.Undef {
					return fmt.Errorf("event %d breaks the chain", i)
				}
			}
			var buf bytes.Buffer
			return r.WriteCAR(ctx, &buf, "")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	open := s.lru.Len()
	s.mu.Unlock()
	if open > 2 {
		t.Fatalf("LRU holds %d repos, max 2", open)
	}
}

// TestDeleteWaitsForHandles: Delete blocks until the last handle is released.
func TestDeleteWaitsForHandles(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, StoreOptions{})
	key := newKey(t)
	did := syntax.DID("did:plc:delwait")
	if _, err := s.Create(ctx, did, key); err != nil {
		t.Fatal(err)
	}
	r, err := s.Repo(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Delete(ctx, did) }()
	// The handle still works while Delete waits.
	if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create("a", "a", t)}, Signer: key}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Delete returned before release: %v", err)
	default:
	}
	r.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, did); ok {
		t.Fatal("still exists")
	}
}
