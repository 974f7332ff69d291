// Command pds runs the Personal Data Server and its admin subcommands (the command table is in commands.go):
//
//	pds serve                    start the server (configured by PDS_* environment variables)
//	pds account list|create|...  operator commands that talk to the running server's admin API
//	pds help                     every command
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/autotls"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, defaultCLI(), os.Args[1:])
	stop()
	os.Exit(code)
}

func runServe(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("serve")
	envFile := fs.String("env-file", "", "read variables not set in the environment from this pds.env file (default $PDS_ENV_FILE)")
	if rest, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	lookup, err := cl.envLookup(*envFile)
	if err != nil {
		return err
	}
	return serve(ctx, cl, lookup, *envFile)
}

func serve(ctx context.Context, cl *cli, lookup pds.Lookup, envFile string) error {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	cfg, err := pds.LoadConfigLookup(lookup)
	if err != nil {
		return err
	}
	log := cfg.Observability.NewLogger(cl.stderr) // PDS_LOG_FORMAT, PDS_LOG_LEVEL
	if envFile == "" {
		envFile = getenv("PDS_ENV_FILE")
	}
	if envFile != "" {
		log.Info("env file", "path", envFile, "note", "variables set in the environment take precedence")
	}

	addr := net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Info("pds listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "service_did", cfg.ServiceDID)
	log.Info("data directory", "path", cfg.DataDirectory, "handle_domains", cfg.ServiceHandleDomains, "invite_required", cfg.InviteRequired)
	if len(cfg.GeneratedSecrets) > 0 {
		log.Warn("generated secrets and saved them in the data directory's secrets.json", "secrets", cfg.GeneratedSecrets)
	}
	// GOMEMLIMIT from the process environment only: the runtime reads nothing else.
	defer startMemoryLimit(cfg.MemoryLimit, os.Getenv("GOMEMLIMIT"), log)()
	defer startMemoryTrim(trimInterval, trimQuiet, trimMinExcess, debug.FreeOSMemory)()
	_, stopPprof, err := startPprof(getenv("PDS_PPROF_ADDR"), log)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopPprof()
	srv, err := pds.New(ctx, cfg, pds.Options{Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	if a := srv.MetricsAddr(); a != "" {
		log.Info("metrics listening (PDS_METRICS_ADDRESS)", "addr", a, "path", "/metrics")
		if host, _, _ := net.SplitHostPort(a); !net.ParseIP(host).IsLoopback() {
			log.Warn("the metrics listener is not on a loopback address: keep it behind a firewall (it tells anyone how the server is used)")
		}
	}
	log.Info("network (PDS_DID_PLC_URL, PDS_BSKY_APP_VIEW_*, PDS_REPORT_SERVICE_*, PDS_MOD_SERVICE_*, PDS_CRAWLERS; \"none\" turns one off)", cfg.Network()...)
	if cfg.Hostname == "localhost" && !cfg.EmbeddedPLC {
		log.Warn("a localhost server is using the PLC directory named by PDS_DID_PLC_URL: DIDs created here are published there", "url", cfg.PLCURL)
	}
	var front *autotls.Frontend
	frontErr := make(<-chan error)
	if cfg.TLS.Auto {
		front, err = autotls.Start(autotls.Config{
			HTTPSAddr: cfg.TLS.HTTPSAddr, HTTPAddr: cfg.TLS.HTTPAddr,
			CacheDir:     filepath.Join(cfg.DataDirectory, "certs"),
			DirectoryURL: cfg.TLS.ACMEDirectoryURL, Email: cfg.TLS.ACMEEmail, CACertsFile: cfg.TLS.ACMECACerts,
			Hosts: srv.HostsName, Log: log,
		}, srv.Handler())
		if err != nil {
			ln.Close()
			srv.Close()
			return err
		}
		frontErr = front.Err()
		log.Info("https (PDS_TLS=auto): certificates on demand for the hostname and hosted handles",
			"https", front.HTTPSAddr, "http", front.HTTPAddr, "acme", cfg.TLS.ACMEDirectoryURL)
	}
	debug.FreeOSMemory() // start-up's garbage (migrations, schemas), before the first request
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var runErr error
	select {
	case runErr = <-errc:
	case runErr = <-frontErr:
		if runErr == nil {
			runErr = errors.New("https listener stopped")
		}
		runErr = fmt.Errorf("https: %w", runErr)
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if front != nil {
		front.Shutdown(shutdownCtx)
	}
	if err := srv.Shutdown(shutdownCtx); runErr == nil {
		runErr = err
	}
	return runErr
}
