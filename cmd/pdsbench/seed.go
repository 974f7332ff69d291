package main

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"modernc.org/sqlite"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds"
	pdsaccounts "github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/blobgc"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// pdsbench seed writes accounts straight into a data directory (no server, no PLC directory), leaving what a
// server leaves after those accounts signed up and it stopped cleanly: an account row each (account.sqlite), a
// repository with its signed genesis commit (actors/.../repo.sqlite, the commit still in the outbox as the
// server leaves it), the signup's #identity, #account, #commit and #sync events in sequencer.sqlite with the
// account's last sequenced rev and no recovery mark, and secrets.json. The DIDs are did:plc genesis operations
// computed offline, exactly as createAccount builds them; they are never submitted, so nothing that resolves
// them works (start-up, reads and writes never do).

const seedUsage = `usage: pdsbench seed -data DIR [-accounts N] [flags]

Creates accounts <prefix>0000000, <prefix>0000001, ... (handles on the first of PDS_SERVICE_HANDLE_DOMAINS, read
from the environment like the server: PDS_HOSTNAME=localhost gives .test) directly in a PDS data directory, as a
clean stop of a server whose users signed up would leave it. Accounts that exist already (by handle) are
skipped, so a larger -accounts tops up a seeded directory. Signing keys, and so the DIDs, are derived from the
directory's rotation key and the account number: test data, never a real server's accounts.

Every account has the password -password (one scrypt hash shared by all: 100k hashes would take most of an
hour on 2 cores) and the email <prefix><number>@example.com.

Not durable while it runs: every SQLite connection of this process runs with synchronous=OFF (no fsync per
transaction; what is left is SQLite's set-up of each new repository file and the repository store's directory
fsyncs), and the tool calls sync(2) once at the end; -durable keeps the server's settings (1.4-1.7x slower
on a disk with ~0.5 ms fsyncs; relaxed, about 200-350 accounts/s on 2 cores: 100k take 5-8 minutes). If the
machine crashes while it runs, delete the directory. If only the tool stops (error, Ctrl-C), rerunning it
completes the accounts (an account whose events were not stored yet misses them on the firehose: delete the
directory for an exact state).

With -records N, the first account (<prefix>0000000) gets a repository of N records (topped up to N): likes,
posts and follows with TID keys from 2023, in commits of 200 signed with the account's key, then one #sync of
the final head on the firehose, as after an import (records.go). 1M records take ~2 minutes on 2 cores and ~630 MB.

flags:
`

type seedFlags struct {
	data, prefix, password string
	accounts, workers      int
	records                int
	durable, quiet         bool
}

func seedMain(args []string) error {
	fs := flag.NewFlagSet("pdsbench seed", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), seedUsage)
		fs.PrintDefaults()
	}
	var f seedFlags
	fs.StringVar(&f.data, "data", "", "the PDS data directory (PDS_DATA_DIRECTORY of the server); created if missing")
	fs.IntVar(&f.accounts, "accounts", 100_000, "number of accounts the directory should hold (with this -prefix)")
	fs.StringVar(&f.prefix, "prefix", "seed", "handle prefix (handles are <prefix><7 digits><domain>)")
	fs.StringVar(&f.password, "password", "seed-password", "password of every seeded account")
	fs.IntVar(&f.workers, "workers", 2*runtime.GOMAXPROCS(0), "accounts created in parallel")
	fs.IntVar(&f.records, "records", 0, "records in the first account's repository (topped up to this many)")
	fs.BoolVar(&f.durable, "durable", false, "keep the server's fsync per transaction (slower)")
	fs.BoolVar(&f.quiet, "q", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.data == "" {
		return errors.New("-data is required")
	}
	if f.accounts < 0 || f.workers < 1 || f.records < 0 {
		return errors.New("-accounts and -records must be >= 0 and -workers >= 1")
	}
	if f.records > 0 && f.accounts < 1 {
		return errors.New("-records needs -accounts >= 1")
	}
	if front := f.prefix + "0000000"; len(front) > 18 || strings.ContainsAny(front, ".") {
		return fmt.Errorf("-prefix %q: handles would be invalid (at most 11 characters, no dots)", f.prefix)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := io.Writer(os.Stderr)
	if f.quiet {
		progress = io.Discard
	}
	res, err := seed(ctx, &f, os.Getenv, progress)
	if res != nil {
		fmt.Printf("seeded %s: %d accounts created, %d already there, in %.1fs (%.0f accounts/s)\n",
			f.data, res.Created, res.Existing, res.Elapsed.Seconds(), float64(res.Created)/max(res.Elapsed.Seconds(), 1e-9))
		if f.records > 0 {
			fmt.Printf("%s: %d records added (%d wanted) in %.1fs\n", seedHandle(f.prefix, 0, ""), res.Records, f.records, res.RecordsElapsed.Seconds())
		}
	}
	return err
}

var relaxSyncOnce sync.Once

// relaxSync makes every SQLite connection this process opens from now on skip fsync (the seed tool is not a
// server: it syncs the file system once at the end). The hook runs after the connection's DSN pragmas, so it
// overrides their synchronous=FULL.
func relaxSync() {
	relaxSyncOnce.Do(func() {
		sqlite.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
			_, err := c.ExecContext(context.Background(), "PRAGMA synchronous=OFF", []driver.NamedValue{})
			return err
		})
	})
}

type seedResult struct {
	Created, Existing int
	Elapsed           time.Duration
	Records           int           // added to the first account's repository (-records)
	RecordsElapsed    time.Duration // of which filling it
}

// seed creates f.accounts accounts in f.data; getenv supplies the rest of the server's configuration (handle
// domain, public URL, recovery key), as pds.LoadConfig reads it.
func seed(ctx context.Context, f *seedFlags, getenv func(string) string, progress io.Writer) (*seedResult, error) {
	start := time.Now()
	if !f.durable {
		relaxSync()
	}
	abs, err := filepath.Abs(f.data)
	if err != nil {
		return nil, err
	}
	cfg, err := pds.LoadConfig(func(k string) string {
		if k == "PDS_DATA_DIRECTORY" {
			return abs
		}
		return getenv(k)
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.ServiceHandleDomains) == 0 {
		return nil, errors.New("no service handle domain configured")
	}
	domain := cfg.ServiceHandleDomains[0]

	// A server starting on account.sqlite without sequencer.sqlite assumes the log was lost and visits every
	// account: refuse to produce that state.
	seqPath := filepath.Join(abs, "sequencer.sqlite")
	_, statErr := os.Stat(seqPath)
	if _, err := os.Stat(filepath.Join(abs, "account.sqlite")); err == nil && errors.Is(statErr, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has account.sqlite but no sequencer.sqlite: not a directory a clean stop left", abs)
	}
	accounts, err := accountstore.Open(ctx, filepath.Join(abs, "account.sqlite"))
	if err != nil {
		return nil, err
	}
	defer accounts.Close()
	seq, err := sequencer.Open(ctx, seqPath, sequencer.Options{})
	if err != nil {
		return nil, err
	}
	defer seq.Close()
	if n := len(seq.DirtyDIDs()); n > 0 {
		return nil, fmt.Errorf("%s: %d accounts are marked for recovery; start and stop the server once first", abs, n)
	}
	repos, err := repo.OpenStore(filepath.Join(abs, "actors"), repo.StoreOptions{})
	if err != nil {
		return nil, err
	}
	defer repos.Close()
	// The rest of what a server's first start creates: the blob GC list and the disk blob store's folders.
	gc, err := blobgc.Open(ctx, filepath.Join(abs, "blobgc.sqlite"))
	if err != nil {
		return nil, err
	}
	gc.Close()
	if cfg.BlobstoreS3 == nil {
		if _, err := pds.OpenBlobstore(cfg); err != nil {
			return nil, err
		}
	}

	passwordHash, err := pdsaccounts.HashPassword(f.password)
	if err != nil {
		return nil, err
	}
	rotationKeys := []string{}
	if cfg.RecoveryDIDKey != "" {
		rotationKeys = append(rotationKeys, cfg.RecoveryDIDKey)
	}
	rotPub, err := cfg.RotationKey.PublicKey()
	if err != nil {
		return nil, err
	}
	rotationKeys = append(rotationKeys, rotPub.DIDKey())
	a := &seeder{
		accounts: accounts, repos: repos, seq: seq,
		rotationKey: cfg.RotationKey, rotationKeys: rotationKeys, publicURL: cfg.PublicURL,
		domain: domain, prefix: f.prefix, passwordHash: passwordHash,
	}

	var next atomic.Int64
	var created, existing atomic.Int64
	errc := make(chan error, f.workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range f.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= f.accounts {
					return
				}
				isNew, err := a.account(ctx, i)
				if err != nil {
					errc <- fmt.Errorf("account %d: %w", i, err)
					cancel()
					return
				}
				if isNew {
					created.Add(1)
				} else {
					existing.Add(1)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c, e := created.Load(), existing.Load()
				fmt.Fprintf(progress, "seed: %d/%d accounts (%d created, %.0f/s)\n", c+e, f.accounts, c, float64(c)/time.Since(start).Seconds())
			}
		}
	}()
	wg.Wait()
	close(done)
	res := &seedResult{Created: int(created.Load()), Existing: int(existing.Load())}
	select {
	case err := <-errc:
		res.Elapsed = time.Since(start)
		return res, err
	default:
	}
	if err := ctx.Err(); err != nil {
		res.Elapsed = time.Since(start)
		return res, err
	}
	if f.records > 0 {
		t := time.Now()
		res.Records, err = a.fillRecords(ctx, 0, f.records, progress)
		res.RecordsElapsed = time.Since(t)
		if err != nil {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("filling %s: %w", seedHandle(f.prefix, 0, domain), err)
		}
	}
	// Every event stored, every file closed, then everything on disk.
	if err := seq.Flush(ctx); err != nil {
		return res, err
	}
	if err := repos.Close(); err != nil {
		return res, err
	}
	if err := seq.Close(); err != nil {
		return res, err
	}
	if err := accounts.Close(); err != nil {
		return res, err
	}
	syscall.Sync()
	res.Elapsed = time.Since(start)
	return res, nil
}

type seeder struct {
	accounts     *accountstore.Store
	repos        *repo.Store
	seq          *sequencer.Sequencer
	rotationKey  *atcrypto.PrivateKeyK256
	rotationKeys []string
	publicURL    string
	domain       string
	prefix       string
	passwordHash string
	accountMu    sync.Mutex
}

// seedHandle is account i's handle.
func seedHandle(prefix string, i int, domain string) string {
	return fmt.Sprintf("%s%07d%s", prefix, i, domain)
}

// account creates account i unless its handle exists; it does what createAccount does (pds/handle_server.go),
// minus the PLC directory and the recovery mark, which a clean stop clears.
func (a *seeder) account(ctx context.Context, i int) (bool, error) {
	handle := seedHandle(a.prefix, i, a.domain)
	if _, err := a.accounts.AccountByHandle(ctx, handle); err == nil {
		return false, nil
	} else if !errors.Is(err, accountstore.ErrNotFound) {
		return false, err
	}
	key, err := a.signingKey(i)
	if err != nil {
		return false, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return false, err
	}
	op := plc.NewGenesis(pub, a.rotationKeys, handle, a.publicURL)
	if err := op.Sign(a.rotationKey); err != nil {
		return false, err
	}
	didStr, err := op.DID()
	if err != nil {
		return false, err
	}
	did := syntax.DID(didStr)
	commit, err := a.repos.Create(ctx, did, key)
	if errors.Is(err, repo.ErrRepoExists) {
		// A previous run stopped between the repo and the account row: start this account over.
		if err := a.repos.Delete(ctx, did); err != nil {
			return false, err
		}
		commit, err = a.repos.Create(ctx, did, key)
	}
	if err != nil {
		return false, err
	}
	acct := &accountstore.Account{
		DID:          did,
		Handle:       handle,
		Email:        strings.TrimSuffix(handle, a.domain) + "@example.com",
		PasswordHash: a.passwordHash,
		SigningKey:   key.Bytes(),
		CreatedAt:    time.Now(),
	}
	// One inserter at a time: concurrent writers to account.sqlite would wait in SQLite's busy handler, which
	// sleeps in steps of up to 100 ms.
	a.accountMu.Lock()
	err = a.accounts.CreateAccount(ctx, acct, "")
	a.accountMu.Unlock()
	if err != nil {
		return false, err
	}
	// The signup's events, in createAccount's order; the sequencer group-commits them (Flush at the end).
	a.seq.EnqueueIdentity(did, handle)
	a.seq.EnqueueAccount(did, true, "")
	a.seq.EnqueueCommit(commit.Event)
	a.seq.EnqueueSync(did, commit.Rev, commit.SyncCAR())
	return true, nil
}

// signingKey derives account i's K256 key from the directory's rotation key, so a rerun makes the same DID.
func (a *seeder) signingKey(i int) (*atcrypto.PrivateKeyK256, error) {
	for ctr := uint32(0); ctr < 16; ctr++ {
		h := sha256.New()
		h.Write([]byte("pdsbench seed signing key\x00"))
		h.Write(a.rotationKey.Bytes())
		binary.Write(h, binary.BigEndian, uint64(i))
		binary.Write(h, binary.BigEndian, ctr)
		if k, err := atcrypto.ParsePrivateBytesK256(h.Sum(nil)); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("could not derive a signing key")
}
