package pds

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/accounts"
)

// loadIdentityResolution reads the settings for resolving user-named hosts.
func (c *Config) loadIdentityResolution(getenv Getenv) error {
	var err error
	if c.DisableSSRFProtection, err = boolEnv(getenv, "PDS_DISABLE_SSRF_PROTECTION", c.DevMode); err != nil {
		return err
	}
	ms, err := intEnv(getenv, "PDS_ID_RESOLVER_TIMEOUT", int(accounts.DefaultResolverTimeout/time.Millisecond))
	if err != nil {
		return err
	}
	if ms <= 0 {
		return fmt.Errorf("PDS_ID_RESOLVER_TIMEOUT: must be a positive number of milliseconds")
	}
	c.IDResolverTimeout = time.Duration(ms) * time.Millisecond
	if v := getenv("PDS_HANDLE_DNS_SERVER"); v != "" {
		if c.HandleDNSServer, err = dnsServerAddr(v); err != nil {
			return fmt.Errorf("PDS_HANDLE_DNS_SERVER: %w", err)
		}
	}
	for _, v := range splitList(getenv("PDS_HANDLE_BACKUP_NAMESERVERS")) {
		addr, err := dnsServerAddr(v)
		if err != nil {
			return fmt.Errorf("PDS_HANDLE_BACKUP_NAMESERVERS: %w", err)
		}
		c.HandleBackupNameservers = append(c.HandleBackupNameservers, addr)
	}
	return nil
}

// dnsServerAddr accepts "ip", "host" or "host:port" and returns host:port (port 53 by default).
func dnsServerAddr(v string) (string, error) {
	if _, _, err := net.SplitHostPort(v); err == nil {
		return v, nil
	}
	if strings.Contains(v, ":") && net.ParseIP(v) == nil {
		return "", fmt.Errorf("%q is not host[:port]", v)
	}
	return net.JoinHostPort(v, "53"), nil
}
