package pds

import (
	"fmt"
	"net"
	"strings"
)

// TLSConfig is HTTPS served by the PDS itself (PDS_TLS=auto, package pds/autotls); off by default, when a
// reverse proxy terminates TLS.
type TLSConfig struct {
	Auto bool // PDS_TLS=auto
	// HTTPSAddr and HTTPAddr: PDS_TLS_HTTPS_ADDR (default :443) and PDS_TLS_HTTP_ADDR (default :80, the
	// HTTP→HTTPS redirect and ACME http-01 challenges).
	HTTPSAddr, HTTPAddr string
	ACMEDirectoryURL    string // PDS_ACME_DIRECTORY_URL (default Let's Encrypt)
	ACMEEmail           string // PDS_ACME_EMAIL, else PDS_ADMIN_EMAIL (the official distribution's Caddy variable)
	ACMECACerts         string // PDS_ACME_CA_CERTS: PEM file of roots for a private ACME server's own HTTPS
}

// DefaultACMEDirectoryURL is Let's Encrypt's production directory.
const DefaultACMEDirectoryURL = "https://acme-v02.api.letsencrypt.org/directory"

func (c *Config) loadTLS(getenv Getenv, local bool) error {
	switch strings.ToLower(getenv("PDS_TLS")) {
	case "", "off", "false", "none":
		return nil
	case "auto":
	default:
		return fmt.Errorf("PDS_TLS: %q is not auto or off", getenv("PDS_TLS"))
	}
	if local {
		return fmt.Errorf("PDS_TLS=auto needs a public PDS_HOSTNAME (certificates are not issued for localhost)")
	}
	c.TLS = TLSConfig{
		Auto:             true,
		HTTPSAddr:        or(getenv("PDS_TLS_HTTPS_ADDR"), ":443"),
		HTTPAddr:         or(getenv("PDS_TLS_HTTP_ADDR"), ":80"),
		ACMEDirectoryURL: or(getenv("PDS_ACME_DIRECTORY_URL"), DefaultACMEDirectoryURL),
		ACMEEmail:        or(getenv("PDS_ACME_EMAIL"), getenv("PDS_ADMIN_EMAIL")),
		ACMECACerts:      getenv("PDS_ACME_CA_CERTS"),
	}
	for name, a := range map[string]string{"PDS_TLS_HTTPS_ADDR": c.TLS.HTTPSAddr, "PDS_TLS_HTTP_ADDR": c.TLS.HTTPAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
