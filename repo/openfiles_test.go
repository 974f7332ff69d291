package repo

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// repoFDs counts this process's open descriptors on files under dir (the store's repositories).
func repoFDs(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("this test counts open files in /proc/self/fd (Linux): %v", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// The open files of a store are bounded by its LRU, not by the number of accounts touched: at most MaxOpenRepos
// repositories are open (plus those evicted while a request still holds them), each with at most
// MaxConnsPerRepo SQLite connections, and a connection holds two descriptors (the database and its WAL) plus
// one per open database for the shared-memory index. Reads (concurrent, to open several connections) and
// writes on ten times more repositories than the LRU holds must stay under that bound at every step.
func TestOpenFilesBoundedByLRU(t *testing.T) {
	const (
		maxOpen  = 4
		conns    = 2
		accounts = 40
	)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenStore(dir, StoreOptions{MaxOpenRepos: maxOpen, MaxConnsPerRepo: conns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := newKey(t)
	dids := make([]syntax.DID, accounts)
	for i := range dids {
		dids[i] = syntax.DID(fmt.Sprintf("did:plc:openfiles%04d", i))
		if _, err := s.Create(ctx, dids[i], key); err != nil {
			t.Fatal(err)
		}
	}
	if n := repoFDs(t, dir); n != 0 {
		t.Fatalf("%d files of the store open after creating the repositories, want 0 (Create closes its file)", n)
	}
	bound := maxOpen * (2*conns + 1)
	// One repository held by a request while it is evicted stays open until released.
	boundInFlight := bound + 2*conns + 1
	peak := 0
	sample := func(step string, limit int) {
		t.Helper()
		n := repoFDs(t, dir)
		peak = max(peak, n)
		if n > limit {
			t.Fatalf("%s: %d files of the store open, bound %d (MaxOpenRepos %d, MaxConnsPerRepo %d)", step, n, limit, maxOpen, conns)
		}
	}
	for round := range 2 {
		for i, did := range dids {
			r, err := s.Repo(ctx, did)
			if err != nil {
				t.Fatal(err)
			}
			// Concurrent readers, so the repository opens more than one connection.
			var wg sync.WaitGroup
			errs := make(chan error, 2*conns)
			for range 2 * conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						if _, err := r.Head(ctx); err != nil {
							errs <- err
							return
						}
						if _, _, err := r.ListRecords(ctx, string(postNSID), 10, "", false); err != nil {
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
			if i%3 == round {
				if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{create(fmt.Sprintf("r%d", round), "hello", t)}, Signer: key}); err != nil {
					t.Fatal(err)
				}
			}
			sample(fmt.Sprintf("round %d, repository %d in use", round, i), boundInFlight)
			r.Release()
			sample(fmt.Sprintf("round %d, repository %d released", round, i), bound)
		}
	}
	// Without the LRU every touched repository would still hold at least its database, WAL and index.
	if 3*accounts <= bound {
		t.Fatalf("the test touches too few repositories (%d) to exceed the bound %d without the LRU", accounts, bound)
	}
	if peak == 0 {
		t.Fatal("no repository file was ever seen open: the count is wrong")
	}
	t.Logf("peak %d open files of the store (bound %d) after touching %d repositories twice", peak, bound, accounts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := repoFDs(t, dir); n != 0 {
		t.Fatalf("%d files of the store open after Close", n)
	}
}
