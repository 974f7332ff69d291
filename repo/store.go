package repo

import (
	"container/list"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

var (
	ErrRepoNotFound   = errors.New("repo not found")
	ErrRepoExists     = errors.New("repo already exists")
	ErrRecordNotFound = errors.New("record not found")
	ErrRecordExists   = errors.New("record already exists")
	ErrInvalidSwap    = errors.New("invalid swap")
	ErrTooManyOps     = errors.New("too many operations in one commit")
	ErrTooLarge       = errors.New("commit too large")
	// ErrInvalidWrite: a malformed write request (bad action or path, missing record,
	// duplicate path, no signer). Wrapped with details.
	ErrInvalidWrite = errors.New("invalid write")
	ErrStoreClosed  = errors.New("repo store closed")
	// ErrBehind: a transaction failed after its commits were handed out (WriteRequest.OnStaged); the repository
	// takes no write until ReplayCommits brings it forward to them.
	ErrBehind = errors.New("repo is behind commits already logged")
)

const (
	// MaxOps and MaxCommitBytes are the relay limits for one #commit (indigo cmd/relay verify.go).
	MaxOps         = 200
	MaxCommitBytes = 2_000_000

	repoFileName = "repo.sqlite"
)

// StoreOptions tunes a Store; zero values mean the defaults.
type StoreOptions struct {
	MaxOpenRepos    int           // repositories kept open in the LRU (default 256)
	MaxConnsPerRepo int           // SQLite connections per open repository (default 4)
	BusyTimeout     time.Duration // SQLite busy_timeout (default 5s)
}

// Store holds every account's repository under one directory.
type Store struct {
	dir  string
	opts StoreOptions

	mu      sync.Mutex
	entries map[syntax.DID]*list.Element // values are *Repo; front = most recently used
	lru     *list.List
	busy    map[syntax.DID]bool // Create or Delete in progress
	// evicted repos still in use: reused by Repo, so a DID never has two live *Repo (two
	// writers with diverging in-memory trees).
	evictedInUse map[syntax.DID]*Repo
	closed       bool
	// Imports (import.go): the DIDs being imported, and those whose file is being swapped (Repo waits).
	importing map[syntax.DID]bool
	swapping  map[syntax.DID]chan struct{}
}

// OpenStore opens (creating) the directory dir.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if opts.MaxOpenRepos <= 0 {
		opts.MaxOpenRepos = 256
	}
	if opts.MaxConnsPerRepo <= 0 {
		opts.MaxConnsPerRepo = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return &Store{
		dir:     dir,
		opts:    opts,
		entries: make(map[syntax.DID]*list.Element),
		lru:     list.New(),
		busy:    make(map[syntax.DID]bool),

		evictedInUse: make(map[syntax.DID]*Repo),
	}, nil
}

func (s *Store) repoDir(did syntax.DID) string {
	h := sha256.Sum256([]byte(did))
	return filepath.Join(s.dir, hex.EncodeToString(h[:1]), did.String())
}

func (s *Store) repoPath(did syntax.DID) string {
	return filepath.Join(s.repoDir(did), repoFileName)
}

// Create makes the repository of did with its initial, empty, signed commit (since nil,
// no ops, prevData nil). The result's Event is also stored in the outbox.
func (s *Store) Create(ctx context.Context, did syntax.DID, signer atcrypto.PrivateKey) (*CommitResult, error) {
	if _, err := syntax.ParseDID(did.String()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWrite, err)
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: no signer", ErrInvalidWrite)
	}
	if err := s.claim(did, ErrRepoExists); err != nil {
		return nil, err
	}
	defer s.unclaim(did)

	path := s.repoPath(did)
	if _, err := os.Stat(path); err == nil {
		// A file without a head is the leftover of a Create that crashed: start over.
		if err := s.checkLeftover(ctx, did); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := mkdirDurable(s.dir, filepath.Dir(path)); err != nil {
		return nil, err
	}
	db, err := openDB(ctx, path, 1, s.opts.BusyTimeout, syncFull)
	if err != nil {
		os.RemoveAll(s.repoDir(did))
		return nil, err
	}
	stmts, err := newStmtCache(ctx, db)
	if err != nil {
		db.Close()
		os.RemoveAll(s.repoDir(did))
		return nil, err
	}
	r := &Repo{did: did, db: db, stmts: stmts}
	empty := mst.NewEmptyTree()
	r.st = &writeState{tree: completeTree(empty), clock: *syntax.NewTIDClock(0)}
	var res *CommitResult
	sc, err := r.stage(ctx, r.st, signer, nil, true)
	if err == nil {
		err = r.storeCommits(ctx, []*stagedCommit{sc}, true)
		res = sc.res
	}
	r.stmts.close()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(s.repoDir(did))
		return nil, err
	}
	return res, nil
}

// checkLeftover returns ErrRepoExists unless did's file has no head, in which case it
// removes the repository directory.
func (s *Store) checkLeftover(ctx context.Context, did syntax.DID) error {
	s.mu.Lock()
	_, open := s.entries[did]
	if s.evictedInUse[did] != nil {
		open = true
	}
	s.mu.Unlock()
	if open {
		return ErrRepoExists
	}
	db, err := openDB(ctx, s.repoPath(did), 1, s.opts.BusyTimeout, syncFull)
	if err != nil {
		return err
	}
	_, err = headRow(ctx, db)
	db.Close()
	if !errors.Is(err, ErrRepoNotFound) {
		if err != nil {
			return err
		}
		return ErrRepoExists
	}
	return os.RemoveAll(s.repoDir(did))
}

// Exists reports whether did has a repository.
func (s *Store) Exists(ctx context.Context, did syntax.DID) (bool, error) {
	s.mu.Lock()
	if s.busy[did] {
		s.mu.Unlock()
		return false, nil
	}
	s.mu.Unlock()
	_, err := os.Stat(s.repoPath(did))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Delete closes the repository of did (waiting for handles in use to be released) and
// removes its files.
func (s *Store) Delete(ctx context.Context, did syntax.DID) error {
	if err := s.claim(did, fmt.Errorf("%w: create or delete in progress", ErrRepoNotFound)); err != nil {
		return err
	}
	defer s.unclaim(did)

	s.mu.Lock()
	var r *Repo
	if e, ok := s.entries[did]; ok {
		r = e.Value.(*Repo)
		if idle := s.removeLocked(e); idle != nil {
			idle.close() // idle: no operation in flight
		}
	}
	s.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if _, err := os.Stat(s.repoPath(did)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrRepoNotFound
		}
		return err
	}
	dir := s.repoDir(did)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	os.Remove(filepath.Dir(dir)) // drop the shard directory if now empty
	return nil
}

// Repo returns an open handle on did's repository (ErrRepoNotFound). The caller must call
// Release exactly once when done.
func (s *Store) Repo(ctx context.Context, did syntax.DID) (*Repo, error) {
	s.mu.Lock()
	for s.swapping[did] != nil { // an import is replacing the file: wait for it
		ch := s.swapping[did]
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	if s.closed {
		s.mu.Unlock()
		return nil, ErrStoreClosed
	}
	if s.busy[did] {
		s.mu.Unlock()
		return nil, ErrRepoNotFound
	}
	var toClose []*Repo
	if r, ok := s.evictedInUse[did]; ok {
		delete(s.evictedInUse, did)
		r.evicted = false
		r.elem = s.lru.PushFront(r)
		s.entries[did] = r.elem
		toClose = s.evictLocked()
	}
	if e, ok := s.entries[did]; ok {
		r := e.Value.(*Repo)
		s.lru.MoveToFront(e)
		r.refs++
		s.mu.Unlock()
		closeAll(toClose)
		select {
		case <-r.ready:
		case <-ctx.Done():
			r.Release()
			return nil, ctx.Err()
		}
		if r.openErr != nil {
			r.Release()
			return nil, r.openErr
		}
		return r, nil
	}
	r := &Repo{store: s, did: did, refs: 1, ready: make(chan struct{}), done: make(chan struct{})}
	r.elem = s.lru.PushFront(r)
	s.entries[did] = r.elem
	toClose = s.evictLocked()
	s.mu.Unlock()
	closeAll(toClose)

	r.openErr = r.open(ctx)
	close(r.ready)
	if r.openErr != nil {
		// Do not cache failures (e.g. not found): drop the entry; it closes on last release.
		s.mu.Lock()
		if e, ok := s.entries[did]; ok && e == r.elem {
			s.removeLocked(e)
		}
		if s.evictedInUse[did] == r {
			delete(s.evictedInUse, did) // never reuse a failed open
		}
		s.mu.Unlock()
		r.Release()
		return nil, r.openErr
	}
	return r, nil
}

// With runs fn with did's repository and releases it afterwards.
func (s *Store) With(ctx context.Context, did syntax.DID, fn func(*Repo) error) error {
	r, err := s.Repo(ctx, did)
	if err != nil {
		return err
	}
	defer r.Release()
	return fn(r)
}

// Close closes every idle repository; handles still in use close on their last Release.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	var toClose []*Repo
	for e := s.lru.Front(); e != nil; {
		next := e.Next()
		if r := s.removeLocked(e); r != nil {
			toClose = append(toClose, r)
		}
		e = next
	}
	s.mu.Unlock()
	return closeAll(toClose)
}

func (s *Store) claim(did syntax.DID, busyErr error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	if s.busy[did] {
		return busyErr
	}
	s.busy[did] = true
	return nil
}

func (s *Store) unclaim(did syntax.DID) {
	s.mu.Lock()
	delete(s.busy, did)
	s.mu.Unlock()
}

// removeLocked drops e from the LRU and marks its repo evicted; it returns the repo if it
// is idle and must be closed now (by the caller, outside s.mu).
func (s *Store) removeLocked(e *list.Element) *Repo {
	r := e.Value.(*Repo)
	s.lru.Remove(e)
	delete(s.entries, r.did)
	r.evicted = true
	if r.refs == 0 {
		return r
	}
	s.evictedInUse[r.did] = r
	return nil
}

func (s *Store) evictLocked() []*Repo {
	var out []*Repo
	for s.lru.Len() > s.opts.MaxOpenRepos {
		if r := s.removeLocked(s.lru.Back()); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func closeAll(rs []*Repo) error {
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

// Repo is an open account repository. Obtain it from Store.Repo and Release it.
type Repo struct {
	store *Store
	did   syntax.DID
	db    *sql.DB
	stmts *stmtCache // prepared statements of db

	ready   chan struct{} // closed once open has finished
	openErr error
	done    chan struct{} // closed when the DB is closed
	once    sync.Once

	// guarded by store.mu
	elem    *list.Element
	refs    int
	evicted bool

	wmu sync.Mutex  // one writer per repository
	st  *writeState // guarded by wmu; nil until loaded, or after a failed commit
	// behind (guarded by wmu): a failed transaction's commits were handed out by OnStaged (ErrBehind).
	behind bool
	// outboxMax (guarded by wmu) is the highest rev the outbox may hold, "" when it is empty: read at open,
	// kept by storeCommits, so a commit trims the outbox only when there is something to trim.
	outboxMax string

	commitTxs int // transactions that stored commits (guarded by wmu; tests see the grouping)

	relaxed bool // the pool's connections run synchronous=NORMAL (openDB); durable writes use durableConn

	ckpt *checkpointer // background WAL checkpoints (checkpoint.go); nil for Create's handle

	qmu   sync.Mutex
	queue []*pendingWrite // Apply calls waiting for the writer (write.go: group commit)
}

func (r *Repo) open(ctx context.Context) error {
	path := r.store.repoPath(r.did)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrRepoNotFound
		}
		return err
	}
	db, err := openDB(ctx, path, r.store.opts.MaxConnsPerRepo, r.store.opts.BusyTimeout, syncNormal)
	if err != nil {
		return err
	}
	r.db, r.relaxed = db, true
	r.ckpt = newCheckpointer(db)
	if r.stmts, err = newStmtCache(ctx, db); err != nil {
		return err
	}
	if _, err := headRow(ctx, r.q()); err != nil {
		return err
	}
	return r.db.QueryRowContext(ctx, "SELECT coalesce(max(rev), '') FROM outbox").Scan(&r.outboxMax)
}

// DID is the account of this repository.
func (r *Repo) DID() syntax.DID { return r.did }

// Release gives back a handle obtained from Store.Repo.
func (r *Repo) Release() {
	s := r.store
	s.mu.Lock()
	r.refs--
	if r.refs < 0 {
		s.mu.Unlock()
		panic("repo: Release called more often than Repo")
	}
	closeNow := r.refs == 0 && r.evicted
	if closeNow && s.evictedInUse[r.did] == r {
		delete(s.evictedInUse, r.did)
	}
	s.mu.Unlock()
	if closeNow {
		r.close()
	}
}

func (r *Repo) close() error {
	var err error
	r.once.Do(func() {
		if r.db != nil {
			r.ckpt.Close()
			r.stmts.close()
			err = r.db.Close()
		}
		if r.done != nil {
			close(r.done)
		}
	})
	return err
}

// mkdirDurable creates dir (under root) and fsyncs every directory it created and its parent, so a new
// account's folder survives power loss: SQLite syncs the database's own directory entry, not the folders above.
func mkdirDurable(root, dir string) error {
	var created []string
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// DiskUsage sums the sizes of every repository's file and of its write-ahead log (a walk of the store's
// directory: one stat per file). Files being imported or adopted are not counted.
func (s *Store) DiskUsage() (db, wal int64, err error) {
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0, err
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		accts, err := os.ReadDir(filepath.Join(s.dir, sh.Name()))
		if err != nil {
			return 0, 0, err
		}
		for _, a := range accts {
			if !a.IsDir() {
				continue
			}
			p := filepath.Join(s.dir, sh.Name(), a.Name(), repoFileName)
			if fi, err := os.Stat(p); err == nil {
				db += fi.Size()
			}
			if fi, err := os.Stat(p + "-wal"); err == nil {
				wal += fi.Size()
			}
		}
	}
	return db, wal, nil
}
