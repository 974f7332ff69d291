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
	"github.com/pdsgo/pds/lexicons"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// Version is reported by /xrpc/_health and describeServer.
const Version = "0.1.0"

// Server is one PDS instance.
type Server struct {
	cfg      *Config
	log      *slog.Logger
	accounts *accountstore.Store
	repos    *repo.Store
	seq      *sequencer.Sequencer
	plc      *plc.Client
	dir      identity.Directory
	catalog  lexicon.Catalog
	echo     *echo.Echo
	httpSrv  *http.Server

	rkeyMu    sync.Mutex
	rkeyClock *syntax.TIDClock

	closeOnce sync.Once
}

// Options carries dependencies that tests and embedders may replace.
type Options struct {
	Logger *slog.Logger
	// Directory resolves handles and DIDs that are not hosted here; nil uses indigo's default with timeouts.
	Directory identity.Directory
	// HTTPClient is used for outbound requests (PLC directory); nil uses a client with a 10 s timeout.
	HTTPClient *http.Client
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
		cfg:       cfg,
		log:       log,
		plc:       &plc.Client{URL: cfg.PLCURL, HTTPClient: httpClient},
		catalog:   cat,
		rkeyClock: syntax.NewTIDClock(0),
	}
	if opts.Directory != nil {
		s.dir = opts.Directory
	} else {
		base := &identity.BaseDirectory{
			PLCURL:     cfg.PLCURL,
			HTTPClient: *httpClient,
			Resolver: net.Resolver{Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
				d := net.Dialer{Timeout: 3 * time.Second}
				return d.DialContext(ctx, network, address)
			}},
			TryAuthoritativeDNS:   true,
			SkipDNSDomainSuffixes: []string{".bsky.social"},
			UserAgent:             "pdsgo/" + Version,
		}
		s.dir = identity.NewCacheDirectory(base, 10000, 24*time.Hour, 2*time.Minute, 5*time.Minute)
	}

	dataDir := cfg.DataDirectory
	sequencerPath := filepath.Join(dataDir, "sequencer.sqlite")
	_, statErr := os.Stat(sequencerPath)
	sequencerIsNew := errors.Is(statErr, os.ErrNotExist)

	if s.accounts, err = accountstore.Open(ctx, filepath.Join(dataDir, "account.sqlite")); err != nil {
		return nil, err
	}
	seqOpts := sequencer.Options{Logger: log}
	if sequencerIsNew {
		// A new log beside existing accounts means the old log was lost: start above any seq it could have
		// handed out (seq values are far below the microsecond clock), so relays never see seq go backwards.
		if n, err := s.accounts.CountAccounts(ctx); err == nil && n > 0 {
			seqOpts.Floor = time.Now().UnixMicro()
			log.Warn("sequencer.sqlite was missing; starting the firehose seq above the clock", "floor", seqOpts.Floor)
		}
	}
	if s.seq, err = sequencer.Open(ctx, sequencerPath, seqOpts); err != nil {
		s.accounts.Close()
		return nil, err
	}
	if s.repos, err = repo.OpenStore(filepath.Join(dataDir, "actors"), repo.StoreOptions{}); err != nil {
		s.seq.Close()
		s.accounts.Close()
		return nil, err
	}
	if err := s.recoverSequencer(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("firehose recovery: %w", err)
	}
	s.echo = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.httpSrv = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
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
	s.Close()
	return err
}

// Close closes the stores (after Shutdown, or on a failed start).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
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
