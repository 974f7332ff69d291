package autotls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Config configures the ACME client and the listeners.
type Config struct {
	HTTPSAddr, HTTPAddr string // e.g. ":443", ":80"
	CacheDir            string // certificates and the ACME account key (created 0700)
	DirectoryURL        string // the ACME directory
	Email               string // the ACME account's contact (optional)
	// CACertsFile is a PEM file of roots trusted for the ACME server's own HTTPS (a private CA, tests);
	// empty: the system roots.
	CACertsFile string
	// Hosts decides whether a certificate may be requested for a name.
	Hosts func(ctx context.Context, name string) (bool, error)
	Log   *slog.Logger
}

// ErrNotHosted is the host policy's answer for a name the server does not host.
var ErrNotHosted = errors.New("autotls: not a name this server hosts")

// Frontend is the running HTTPS and HTTP listeners.
type Frontend struct {
	https, http *http.Server
	errc        chan error
	// HTTPSAddr and HTTPAddr are the bound addresses (a ":0" in Config becomes a port).
	HTTPSAddr, HTTPAddr string
}

// Start listens on both addresses and serves handler over HTTPS; the HTTP listener answers ACME http-01
// challenges and redirects everything else to HTTPS.
func Start(cfg Config, handler http.Handler) (*Frontend, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	client := &acme.Client{DirectoryURL: cfg.DirectoryURL, UserAgent: "pdsgo"}
	if cfg.CACertsFile != "" {
		pem, err := os.ReadFile(cfg.CACertsFile)
		if err != nil {
			return nil, fmt.Errorf("PDS_ACME_CA_CERTS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("PDS_ACME_CA_CERTS: no PEM certificates in %s", cfg.CACertsFile)
		}
		client.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	m := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  autocert.DirCache(cfg.CacheDir),
		Email:  cfg.Email,
		Client: client,
		HostPolicy: func(ctx context.Context, host string) error {
			ok, err := cfg.Hosts(ctx, host)
			if err != nil {
				return err
			}
			if !ok {
				cfg.Log.Debug("tls: refused a certificate for a name not hosted here", "name", host)
				return fmt.Errorf("%w: %s", ErrNotHosted, host)
			}
			cfg.Log.Info("tls: certificate for", "name", host)
			return nil
		},
	}
	lnTLS, err := net.Listen("tcp", cfg.HTTPSAddr)
	if err != nil {
		return nil, fmt.Errorf("PDS_TLS_HTTPS_ADDR: %w", err)
	}
	lnHTTP, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		lnTLS.Close()
		return nil, fmt.Errorf("PDS_TLS_HTTP_ADDR: %w", err)
	}
	errLog := slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug) // handshakes refused by the policy are noise
	f := &Frontend{
		https: &http.Server{Handler: handler, TLSConfig: m.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 2 * time.Minute, ErrorLog: errLog},
		http: &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 30 * time.Second, ErrorLog: errLog},
		errc:      make(chan error, 2),
		HTTPSAddr: lnTLS.Addr().String(),
		HTTPAddr:  lnHTTP.Addr().String(),
	}
	go func() { f.errc <- ignoreClosed(f.https.ServeTLS(lnTLS, "", "")) }()
	go func() { f.errc <- ignoreClosed(f.http.Serve(lnHTTP)) }()
	return f, nil
}

// Err receives a listener's failure.
func (f *Frontend) Err() <-chan error { return f.errc }

// Shutdown stops both listeners, waiting for requests in flight.
func (f *Frontend) Shutdown(ctx context.Context) error {
	return errors.Join(f.https.Shutdown(ctx), f.http.Shutdown(ctx))
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || (err != nil && strings.Contains(err.Error(), "use of closed network connection")) {
		return nil
	}
	return err
}
