// Package pds is the Personal Data Server: configuration, HTTP routes and XRPC handlers, accounts and
// sessions, the write path and the firehose.
package pds

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/background"
	"github.com/pdsgo/pds/lexicons"
	"github.com/pdsgo/pds/pds/accountpages"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/backup"
	"github.com/pdsgo/pds/pds/blobs"
	"github.com/pdsgo/pds/pds/firehose"
	"github.com/pdsgo/pds/pds/mailer"
	"github.com/pdsgo/pds/pds/metrics"
	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/pds/proxy"
	"github.com/pdsgo/pds/pds/ratelimit"
	"github.com/pdsgo/pds/pds/requestid"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/pds/writer"
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
	router   *xrpc.Router // the XRPC methods of the route table (routes.go)
	httpSrv  *http.Server

	// Operator features (email, moderation, rate limits).
	mailer mailer.Mailer
	limits *ratelimit.Limits // nil when PDS_RATE_LIMITS_ENABLED=false

	// bg runs the background goroutines.
	bg *background.Group
	// firehose serves subscribeRepos and runs retention and requestCrawl.
	firehose *firehose.Firehose
	// proxy makes the calls forwarded to other services (proxying, getFeed, read-after-write, service auth).
	proxy *proxy.Proxy
	// blobs: the blob store, the blob GC list and its collector.
	blobs *blobs.Service
	// writer is the write path: commits, import, crash recovery.
	writer *writer.Writer
	// oauth is the OAuth authorization server (pds/oauth); its access tokens reach handlers through s.auth.
	oauth *oauth.Provider

	// embeddedPLC is the localhost server's own PLC directory (nil when PDS_DID_PLC_URL names one).
	embeddedPLC *embeddedPLC

	rkeyMu    sync.Mutex
	rkeyClock *syntax.TIDClock

	closeOnce sync.Once

	accountPages *accountpages.Pages // the account's own pages at /account (pds/accountpages)

	// metrics is the Prometheus registry and its hooks (pds/metrics); nil when PDS_METRICS_ADDRESS is unset.
	metrics    *metrics.Metrics
	metricsSrv *metrics.Server
}

// RateLimitOptions adjust the rate limiters (tests pass a clock they can move instead of waiting).
type RateLimitOptions = ratelimit.Options

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
	var ePLC *embeddedPLC
	if cfg.EmbeddedPLC {
		var err error
		if ePLC, err = startEmbeddedPLC(ctx, cfg); err != nil {
			return nil, err
		}
	}
	s, err := newServer(ctx, cfg, opts, ePLC)
	if err != nil {
		ePLC.close() // a failed start
		return nil, err
	}
	return s, nil
}

func newServer(ctx context.Context, cfg *Config, opts Options, ePLC *embeddedPLC) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = slog.New(requestid.Handler(log.Handler())) // request_id on lines logged for a request
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	cat, err := lexicons.Catalog()
	if err != nil {
		return nil, fmt.Errorf("loading lexicons: %w", err)
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		embeddedPLC: ePLC,
		plc:         &plc.Client{URL: cfg.PLCURL, HTTPClient: httpClient},
		catalog:     cat,
		rkeyClock:   syntax.NewTIDClock(0),
		bg:          background.New(),
	}
	if cfg.Observability.MetricsAddress != "" {
		s.metrics = metrics.New(Version)
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
	if s.metrics != nil {
		s.mailer = countedMailer{s.mailer, s.metrics}
	}
	if cfg.RateLimitsEnabled {
		if s.metrics != nil {
			opts.RateLimits.Metrics = s.metrics
		}
		s.limits = ratelimit.New(opts.RateLimits, ratelimit.Bypass{Key: cfg.RateLimitBypassKey, IPs: cfg.RateLimitBypassIPs}, auth.CallerDID)
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
	if s.metrics != nil {
		seqOpts.Metrics = s.metrics
	}
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
	if s.blobs, err = openBlobs(ctx, cfg, s.repos, log); err != nil {
		s.Close()
		store.Close()
		return nil, fmt.Errorf("blob store: %w", err)
	}
	s.writer = &writer.Writer{
		Accounts:    store,
		Repos:       s.repos,
		Seq:         s.seq,
		Blobs:       s.blobs,
		Log:         log,
		CheckCommit: s.checkBlobTakedowns,
	}
	if s.metrics != nil {
		s.writer.Metrics = s.metrics
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
		Blobs:   s.blobs,
		Writer:  s.writer,
		Metrics: accountMetrics(s.metrics),
	})
	s.auth = auth.New(auth.Config{
		JWTSecret:     cfg.JWTSecret,
		ServiceDID:    cfg.ServiceDID,
		AdminPassword: cfg.AdminPassword,
		Docs:          ids.Docs(),
		DocTimeout:    resolverTimeout(cfg),
	}, store, s.accounts)
	if err := s.newOAuth(cfg, ids, log); err != nil {
		s.Close()
		return nil, err
	}
	s.bg.Go(func() { s.blobs.Run(s.bg.Quit()) })
	if err := s.writer.Recover(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("firehose recovery: %w", err)
	}
	if seqOpts.Floor > 0 {
		if err := s.writer.ResyncAfterLostLog(ctx); err != nil {
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
	s.proxy = proxy.New(cfg.proxyConfig(), proxy.Deps{
		Metrics:  proxyMetrics(s.metrics),
		Log:      log,
		Accounts: s.accounts,
		Repos:    s.repos,
		ResolveDID: func(ctx context.Context, did syntax.DID) (*identity.Identity, error) {
			return s.accounts.ResolveDIDDoc(ctx, did, false)
		},
		Authenticate: func(c echo.Context) (proxy.Caller, error) {
			v, err := s.auth.Authenticate(c.Request(), auth.Standard)
			if err != nil {
				return proxy.Caller{}, err
			}
			auth.SetResponseHeaders(c, v)
			return proxyCaller(v), nil
		},
		CallerDID: auth.CallerDID,
		Caller: func(c echo.Context) proxy.Caller {
			if v := auth.CallerOf(c); v != nil {
				return proxyCaller(v)
			}
			return proxy.Caller{}
		},
	})
	if err := s.newAccountPages(); err != nil {
		s.Close()
		return nil, fmt.Errorf("account pages: %w", err)
	}
	s.firehose = firehose.New(cfg.firehoseConfig(opts.CrawlNotifyInterval), s.seq, s.repos, log, s.bg, httpClient)
	s.echo = s.routes()
	s.firehose.Start()
	// Built here, not in Serve, so a Shutdown racing a starting Serve sees it (Serve then returns at once).
	s.httpSrv = &http.Server{
		Handler:           s.Handler(),
		MaxHeaderBytes:    MaxHeaderBytes - headerReadSlop, // headerlimits.go
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if cfg.Backup != nil { // continuous backup (pds/backup)
		var obs backup.Observer
		if s.metrics != nil {
			obs = s.metrics.Backup()
		}
		s.bg.Go(func() { backup.RunObserved(s.bg.Quit(), cfg.Backup, backupSource(cfg), log, obs) })
	}
	if s.metrics != nil {
		if err := s.startMetrics(store); err != nil {
			s.Close()
			return nil, err
		}
	}
	// Deactivated accounts past their deleteAfter (pds/accounts).
	s.bg.Go(func() { s.accounts.RunDeletionJob(s.bg.Quit()) })
	// Expired OAuth requests, codes, sessions and browser sign-ins.
	s.bg.Go(func() { s.pruneOAuth(s.bg.Quit()) })
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return limitHeaderLines(s.echo) }

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
			s.bg.Stop()
		}
		// Nothing writes any more: accounts whose repo head is on the stream need no recovery at the next
		// start, which then does no per-account work after a clean stop.
		if err := s.writer.ReleaseDirtyMarks(ctx); err != nil {
			s.log.Warn("shutdown: accounts stay marked for recovery at the next start", "err", err)
		}
	}
	s.Close()
	return err
}

// Close closes the stores (after Shutdown, or on a failed start).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.metricsSrv != nil {
			s.metricsSrv.Close()
		}
		if s.bg != nil {
			s.bg.Stop() // firehose subscribers get a close frame; background loops end
		}
		s.blobs.Close()
		if s.repos != nil {
			s.repos.Close()
		}
		if s.seq != nil {
			s.seq.Close()
		}
		if s.accounts != nil {
			s.accounts.Close()
		}
		s.embeddedPLC.close()
	})
}

// openBlobs opens the configured blob store and the blob GC list.
func openBlobs(ctx context.Context, cfg *Config, repos *repo.Store, log *slog.Logger) (*blobs.Service, error) {
	store, err := OpenBlobstore(cfg)
	if err != nil {
		return nil, err
	}
	return blobs.Open(ctx, cfg.DataDirectory, blobs.Options{
		Store: store, Repos: repos, Log: log,
		Limit: cfg.BlobUploadLimit, Expiry: cfg.BlobTempExpiry, Grace: cfg.BlobGCGrace,
	})
}

// checkBlobTakedowns is the write path's check before a commit: a record may not reference a taken-down blob.
func (s *Server) checkBlobTakedowns(ctx context.Context, did syntax.DID, ops []repo.WriteOp) error {
	return blobs.CheckTakedowns(ctx, did, ops, s.accounts.BlobTakendown)
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
