// Command pds runs the Personal Data Server and its admin subcommands.
//
//	pds serve              start the server (configured by PDS_* environment variables)
//	pds create-invite N    print a new invite code usable N times (talks to the running server's admin API)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pdsgo/pds/pds"
)

const usage = `usage: pds <command>

commands:
  serve               start the PDS (configuration: PDS_* environment variables, see README.md)
  create-invite [N]   create an invite code usable N times (default 1) on the running server
`

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve()
	case "create-invite":
		err = createInvite(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pds:", err)
		os.Exit(1)
	}
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
	log.Info("plc directory", "url", cfg.PLCURL)
	log.Info("data directory", "path", cfg.DataDirectory, "handle_domains", cfg.ServiceHandleDomains, "invite_required", cfg.InviteRequired)
	if len(cfg.GeneratedSecrets) > 0 {
		log.Warn("generated secrets and saved them in the data directory's secrets.json", "secrets", cfg.GeneratedSecrets)
	}
	srv, err := pds.New(ctx, cfg, pds.Options{Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
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

// createInvite calls the running server's createInviteCode with the admin password from the same config.
func createInvite(args []string) error {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			return errors.New("create-invite: N must be a positive integer")
		}
		n = v
	}
	cfg, err := pds.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]int{"useCount": n})
	url := fmt.Sprintf("http://127.0.0.1:%d/xrpc/com.atproto.server.createInviteCode", cfg.Port)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", cfg.AdminPassword)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %d: %s", resp.StatusCode, out)
	}
	var res struct{ Code string }
	if err := json.Unmarshal(out, &res); err != nil {
		return err
	}
	fmt.Println(res.Code)
	return nil
}
