// Package pds is the Personal Data Server: configuration, HTTP routes and XRPC handlers, accounts and
// sessions, the write path and the firehose.
package pds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/lexicons"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/backup"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/mailer"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Version is reported by /xrpc/_health and describeServer.
const Version = "0.1.0"

// Server is one PDS instance.
type Server struct {
	cfg      *Config
	log      *slog.Logger
	accounts *accounts.Service // account store, lifecycle, identity, takedowns (pds/accounts)
	repos    *repo.Store
	seq      *sequencer.Sequencer
	plc      *plc.Client
	auth     *auth.Verifier // who is calling (pds/auth)
	catalog  lexicon.Catalog
	echo     *echo.Echo
	httpSrv  *http.Server

	// Operator features (email, moderation, rate limits).
	mailer mailer.Mailer
	limits *rateLimits // nil when PDS_RATE_LIMITS_ENABLED=false (see ratelimit.go)

	// httpClient makes outbound requests (requestCrawl); bg runs the background goroutines.
	httpClient *http.Client
	bg         *background
	// outbound makes the calls forwarded to other services (proxy.go), through the SSRF guard.
	outbound *outbound
	// blobs: the blob store, the blob GC list and its collector (blobs.go).
	blobs *blobService

	rkeyMu    sync.Mutex
	rkeyClock *syntax.TIDClock

	closeOnce sync.Once
}

// Options carries dependencies that tests and embedders may replace.
type Options struct {
	Logger *slog.Logger
	// Directory resolves handles and DIDs that are not hosted here; nil uses indigo's default with timeouts.
	Directory identity.Directory
	// HTTPClient is used for outbound requests (PLC directory); nil uses a client with a 10 s timeout. When set it
	// also carries identity requests to user-named hosts (handles, did:web), which otherwise get an
	// SSRF-protected client: tests use it to serve those hosts from loopback.
	HTTPClient *http.Client
	// Mailer sends email; nil builds one from PDS_EMAIL_SMTP_URL (or logs mail when that is unset).
	Mailer mailer.Mailer
	// RateLimits adjusts the rate limiters (tests pass a clock they can move instead of waiting).
	RateLimits RateLimitOptions
	// CrawlNotifyInterval is the least time between requestCrawl rounds to PDS_CRAWLERS; 0 = 20 minutes.
	CrawlNotifyInterval time.Duration
}

// New opens the data directory's stores, recovers the firehose after a crash, and builds the HTTP routes.
func New(ctx context.Context, cfg *Config, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	cat, err := lexicons.Catalog()
	if err != nil {
		return nil, fmt.Errorf("loading lexicons: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		log:        log,
		plc:        &plc.Client{URL: cfg.PLCURL, HTTPClient: httpClient},
		catalog:    cat,
		rkeyClock:  syntax.NewTIDClock(0),
		httpClient: httpClient,
		bg:         newBackground(),
		outbound:   newOutbound(cfg),
	}
	switch {
	case opts.Mailer != nil:
		s.mailer = opts.Mailer
	case cfg.EmailSMTPURL != "":
		if s.mailer, err = mailer.NewSMTP(cfg.EmailSMTPURL, cfg.EmailFromAddress); err != nil {
			return nil, fmt.Errorf("PDS_EMAIL_SMTP_URL: %w", err)
		}
	default:
		log.Warn("PDS_EMAIL_SMTP_URL is not set: email (confirmation, password reset, tokens) is logged, not sent")
		s.mailer = mailer.NewLogMailer(log)
	}
	if cfg.RateLimitsEnabled {
		s.limits = newRateLimits(opts.RateLimits)
	} else {
		log.Warn("rate limits are off (PDS_RATE_LIMITS_ENABLED=false)")
	}
	var ids *accounts.Directories // handles (verified both ways) and DID documents, cached
	if opts.Directory != nil {
		ids = accounts.OverrideDirectories(opts.Directory)
	} else {
		ids = accounts.NewDirectories(accounts.IdentityConfig{
			PLCURL:                cfg.PLCURL,
			Timeout:               cfg.IDResolverTimeout,
			DNSServer:             cfg.HandleDNSServer,
			BackupNameservers:     cfg.HandleBackupNameservers,
			DisableSSRFProtection: cfg.DisableSSRFProtection,
			UserAgent:             "pdsgo/" + Version,
		}, opts.HTTPClient)
	}

	dataDir := cfg.DataDirectory
	sequencerPath := filepath.Join(dataDir, "sequencer.sqlite")
	_, statErr := os.Stat(sequencerPath)
	sequencerIsNew := errors.Is(statErr, os.ErrNotExist)

	store, err := accountstore.Open(ctx, filepath.Join(dataDir, "account.sqlite"))
	if err != nil {
		return nil, err
	}
	seqOpts := sequencer.Options{Logger: log}
	restored, err := backup.ReadRestoredMarker(dataDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	if restored != nil {
		// Restored from a backup: relays saw seqs above the backup's log and heads newer than its repositories.
		// Continue above the clock and announce every head, as after a lost log (the marker goes once done).
		seqOpts.Floor = max(time.Now().UnixMicro(), restored.Seq+1)
		log.Warn("data directory restored from a backup; starting the firehose seq above the clock", "round", restored.Round, "floor", seqOpts.Floor)
	} else if sequencerIsNew {
		// A new log beside existing accounts means the old log was lost: start above any seq it could have
		// handed out (seq values are far below the microsecond clock), so relays never see seq go backwards.
		if n, err := store.CountAccounts(ctx); err == nil && n > 0 {
			seqOpts.Floor = time.Now().UnixMicro()
			log.Warn("sequencer.sqlite was missing; starting the firehose seq above the clock", "floor", seqOpts.Floor)
		}
	}
	if s.seq, err = sequencer.Open(ctx, sequencerPath, seqOpts); err != nil {
		store.Close()
		return nil, err
	}
	if s.repos, err = repo.OpenStore(filepath.Join(dataDir, "actors"), repo.StoreOptions{}); err != nil {
		s.seq.Close()
		store.Close()
		return nil, err
	}
	s.accounts = accounts.New(accounts.Config{
		PublicURL:            cfg.PublicURL,
		Hostname:             cfg.Hostname,
		ServiceDID:           cfg.ServiceDID,
		ServiceHandleDomains: cfg.ServiceHandleDomains,
		RotationKey:          cfg.RotationKey,
		RecoveryDIDKey:       cfg.RecoveryDIDKey,
		DataDirectory:        cfg.DataDirectory,
		ResolverTimeout:      resolverTimeout(cfg),
	}, accounts.Deps{
		Store: store, Repos: s.repos, Seq: s.seq, PLC: s.plc, IDs: ids, Mailer: s.mailer, Log: log,
		Blobs:     accountBlobs{s},
		RepoError: repoError,
	})
	s.auth = auth.New(auth.Config{
		JWTSecret:     cfg.JWTSecret,
		ServiceDID:    cfg.ServiceDID,
		AdminPassword: cfg.AdminPassword,
		Docs:          ids.Docs(),
		DocTimeout:    resolverTimeout(cfg),
	}, store, s.accounts)
	if s.blobs, err = s.openBlobs(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("blob store: %w", err)
	}
	if err := s.recoverSequencer(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("firehose recovery: %w", err)
	}
	if seqOpts.Floor > 0 {
		if err := s.resyncAfterLostLog(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("firehose rebuild: %w", err)
		}
		if restored != nil {
			if err := backup.ClearRestoredMarker(dataDir); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	s.echo = s.routes()
	s.startFirehoseBackground(opts.CrawlNotifyInterval)
	// Built here, not in Serve, so a Shutdown racing a starting Serve sees it (Serve then returns at once).
	s.httpSrv = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if cfg.Backup != nil { // continuous backup (pds/backup)
		s.bg.Go(func() { backup.Run(s.bg.Quit(), cfg.Backup, backupSource(cfg), log) })
	}
	// Deactivated accounts past their deleteAfter (pds/accounts).
	s.bg.Go(func() { s.accounts.RunDeletionJob(s.bg.Quit()) })
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.httpSrv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, waits for those in flight, then closes the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.httpSrv != nil {
		err = s.httpSrv.Shutdown(ctx)
	}
	if err == nil {
		if s.bg != nil {
			s.bg.stop()
		}
		// Nothing writes any more: accounts whose repo head is on the stream need no recovery at the next
		// start, which then does no per-account work after a clean stop.
		if err := s.releaseDirtyMarks(ctx); err != nil {
			s.log.Warn("shutdown: accounts stay marked for recovery at the next start", "err", err)
		}
	}
	s.Close()
	return err
}

// Close closes the stores (after Shutdown, or on a failed start).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.bg != nil {
			s.bg.stop() // firehose subscribers get a close frame; background loops end
		}
		s.blobs.close()
		if s.repos != nil {
			s.repos.Close()
		}
		if s.seq != nil {
			s.seq.Close()
		}
		if s.accounts != nil {
			s.accounts.Close()
		}
	})
}

// nextRKey returns a TID record key from a monotonic clock, so two records created in the same microsecond
// never collide.
func (s *Server) nextRKey() string {
	s.rkeyMu.Lock()
	defer s.rkeyMu.Unlock()
	return s.rkeyClock.Next().String()
}

// PurgeExpiredAccounts deletes deactivated accounts whose deleteAfter has passed and returns how many it
// deleted. The server runs it at start and every minute.
func (s *Server) PurgeExpiredAccounts(ctx context.Context) (int, error) {
	return s.accounts.PurgeExpired(ctx)
}

// backupSource is what a backup round copies: the data directory, and the disk blob store unless blobs are in S3.
func backupSource(cfg *Config) backup.Source {
	src := backup.Source{DataDirectory: cfg.DataDirectory}
	if cfg.BlobstoreS3 == nil {
		src.BlobDirectory = cfg.BlobstoreDisk
	}
	return src
}

func resolverTimeout(cfg *Config) time.Duration {
	if cfg.IDResolverTimeout > 0 {
		return cfg.IDResolverTimeout
	}
	return accounts.DefaultResolverTimeout
}

// accountBlobs gives accounts what it needs of the blob service (accounts.Blobs).
type accountBlobs struct{ s *Server }

func (b accountBlobs) DeleteAccountBlobs(ctx context.Context, did string) error {
	return b.s.deleteAccountBlobs(ctx, did)
}

func (b accountBlobs) SetQuarantine(ctx context.Context, did string, c cid.Cid, quarantined bool) error {
	return b.s.setBlobQuarantine(ctx, did, c, quarantined)
}

func (b accountBlobs) HasBytes(ctx context.Context, did string, c cid.Cid) (bool, error) {
	_, err := b.s.blobs.store.Stat(ctx, did, c)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (b accountBlobs) Open(ctx context.Context, did string, c cid.Cid) (io.ReadCloser, error) {
	return b.s.blobs.store.Open(ctx, did, c)
}

func (b accountBlobs) UnreferencedHook(did string) (func(context.Context) error, func()) {
	return b.s.blobs.unreferencedHook(did)
}

// (The blob service should own this: accounts.Blobs.StoreArchived.)
// StoreArchived stores one blob of an account archive under its declared type, checking its content against its CID.
func (b accountBlobs) StoreArchived(ctx context.Context, did string, c cid.Cid, mimeType string, body io.Reader, size int64) error {
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	tmp, err := blobstore.Put(ctx, b.s.blobs.store, body, size, -1)
	if err != nil {
		return fmt.Errorf("blob %s: %w", c, err)
	}
	promoted := false
	defer func() {
		if !promoted {
			b.s.blobs.store.DeleteTemp(context.WithoutCancel(ctx), tmp.Key)
		}
	}()
	if !tmp.CID.Equals(c) {
		return xrpc.InvalidRequest("Invalid account archive: blob %s has the content of %s", c, tmp.CID)
	}
	r, err := b.s.repos.Repo(ctx, syntax.DID(did))
	if err != nil {
		return repoError(err)
	}
	defer r.Release()
	now := time.Now()
	release, err := b.s.blobs.mark(ctx, did, now.Add(b.s.blobs.expiry))
	if err != nil {
		return err
	}
	defer release()
	unlock := b.s.blobs.locks.lock(did + "/" + c.String())
	defer unlock()
	dctx := context.WithoutCancel(ctx)
	row, err := r.BeginBlob(dctx, repo.BlobRef{CID: c, MimeType: mimeType, Size: tmp.Size}, now)
	if err != nil {
		return err
	}
	if n, err := b.s.blobs.store.Stat(dctx, did, c); row.State != repo.BlobReady || err != nil || n != tmp.Size {
		if err := b.s.blobs.store.Promote(dctx, tmp.Key, did, c); err != nil {
			return err
		}
		promoted = true
	}
	_, err = r.FinishBlob(dctx, c, now)
	return err
}
