// Command pds runs the Personal Data Server and its admin subcommands (the command table is in commands.go):
//
//	pds serve                    start the server (configured by PDS_* environment variables)
//	pds account list|create|...  operator commands that talk to the running server's admin API
//	pds help                     every command
package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/pdsgo/pds/pds"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, defaultCLI(), os.Args[1:])
	stop()
	os.Exit(code)
}

func serve() error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := pds.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

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
	defer startMemoryLimit(cfg.MemoryLimit, os.Getenv("GOMEMLIMIT"), log)()
	defer startMemoryTrim(trimInterval, trimQuiet, trimMinExcess, debug.FreeOSMemory)()
	_, stopPprof, err := startPprof(os.Getenv("PDS_PPROF_ADDR"), log)
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
	log.Info("network (PDS_DID_PLC_URL, PDS_BSKY_APP_VIEW_*, PDS_REPORT_SERVICE_*, PDS_MOD_SERVICE_*, PDS_CRAWLERS; \"none\" turns one off)", cfg.Network()...)
	if cfg.Hostname == "localhost" && !cfg.EmbeddedPLC {
		log.Warn("a localhost server is using the PLC directory named by PDS_DID_PLC_URL: DIDs created here are published there", "url", cfg.PLCURL)
	}
	debug.FreeOSMemory() // start-up's garbage (migrations, schemas), before the first request
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
