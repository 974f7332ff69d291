package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/pdsgo/pds/pds"
)

// runHealth asks the running server's /xrpc/_health (a container HEALTHCHECK: distroless has no curl).
func runHealth(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("health")
	server := fs.String("server", "", "server URL (default http://<PDS_BIND_ADDRESS or 127.0.0.1>:$PDS_PORT)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	envFile := fs.String("env-file", "", "read PDS_PORT and PDS_BIND_ADDRESS from this pds.env when not in the environment")
	if rest, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", rest[0])}
	}
	lookup, err := cl.envLookup(*envFile)
	if err != nil {
		return err
	}
	base := *server
	if base == "" {
		host, _ := lookup("PDS_BIND_ADDRESS")
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		port, _ := lookup("PDS_PORT")
		if port == "" {
			port = "2583"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/xrpc/_health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct {
		Version string `json:"version"`
	}
	json.Unmarshal(body, &h)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered HTTP %d: %s", base, resp.StatusCode, body)
	}
	fmt.Fprintf(cl.stdout, "ok: %s (version %s)\n", base, h.Version)
	return nil
}

// runVersion prints the server version and the build's Go version and VCS revision.
func runVersion(ctx context.Context, cl *cli, args []string) error {
	if rest, err := parseFlags(cl.flagSet("version"), args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", rest[0])}
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = " " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					rev += "-dirty"
				}
			}
		}
	}
	fmt.Fprintf(cl.stdout, "pds %s%s (%s %s/%s)\n", pds.Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
