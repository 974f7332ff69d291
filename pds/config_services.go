package pds

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/proxy"
)

// The services outbound calls may reach (package proxy makes the calls) and the limits on a proxied call.

// ServiceConfig is a service the operator configured: its base URL and DID.
type ServiceConfig = proxy.Service

// ProxyConfig bounds a proxied call.
type ProxyConfig = proxy.Limits

const (
	defaultProxyHeadersTimeout = 10 * time.Second
	defaultProxyBodyTimeout    = 30 * time.Second
	defaultProxyMaxResponse    = 10 << 20
)

// loadServices reads the configured services and proxy limits (the reference's variable names).
func (c *Config) loadServices(getenv Getenv) error {
	var err error
	if c.BskyAppView, err = serviceEnv(getenv, "PDS_BSKY_APP_VIEW"); err != nil {
		return err
	}
	if c.BskyAppView != nil {
		c.BskyAppView.CDNURLPattern = getenv("PDS_BSKY_APP_VIEW_CDN_URL_PATTERN")
	}
	if c.ModService, err = serviceEnv(getenv, "PDS_MOD_SERVICE"); err != nil {
		return err
	}
	if c.ReportService, err = serviceEnv(getenv, "PDS_REPORT_SERVICE"); err != nil {
		return err
	}
	if c.ReportService == nil && c.ModService != nil {
		c.ReportService = c.ModService // reports go to the moderation service unless told otherwise
	}
	c.Proxy = ProxyConfig{HeadersTimeout: defaultProxyHeadersTimeout, BodyTimeout: defaultProxyBodyTimeout,
		MaxResponseSize: defaultProxyMaxResponse}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"PDS_PROXY_HEADERS_TIMEOUT", &c.Proxy.HeadersTimeout}, {"PDS_PROXY_BODY_TIMEOUT", &c.Proxy.BodyTimeout}} {
		ms, err := intEnv(getenv, d.name, 0)
		if err != nil {
			return err
		}
		if ms < 0 {
			return fmt.Errorf("%s: must be a positive number of milliseconds", d.name)
		}
		if ms > 0 {
			*d.dst = time.Duration(ms) * time.Millisecond
		}
	}
	n, err := intEnv(getenv, "PDS_PROXY_MAX_RESPONSE_SIZE", 0)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("PDS_PROXY_MAX_RESPONSE_SIZE: must be a positive number of bytes")
	}
	if n > 0 {
		c.Proxy.MaxResponseSize = int64(n)
	}
	return nil
}

// serviceEnv reads <prefix>_URL and <prefix>_DID: both or neither.
func serviceEnv(getenv Getenv, prefix string) (*ServiceConfig, error) {
	u, did := strings.TrimRight(getenv(prefix+"_URL"), "/"), getenv(prefix+"_DID")
	if u == "none" { // turned off (config_network.go: a real hostname otherwise gets a default)
		return nil, nil
	}
	if u == "" && did == "" {
		return nil, nil
	}
	if u == "" || did == "" {
		return nil, fmt.Errorf("%s_URL and %s_DID must be set together", prefix, prefix)
	}
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, fmt.Errorf("%s_URL: not an http(s) URL: %q", prefix, u)
	}
	if _, err := syntax.ParseDID(did); err != nil {
		return nil, fmt.Errorf("%s_DID: %w", prefix, err)
	}
	return &ServiceConfig{URL: u, DID: did}, nil
}

// proxyConfig is what package proxy reads of the configuration.
func (c *Config) proxyConfig() proxy.Config {
	return proxy.Config{
		AppView:               c.BskyAppView,
		ModService:            c.ModService,
		ReportService:         c.ReportService,
		Limits:                c.Proxy,
		PublicURL:             c.PublicURL,
		DisableSSRFProtection: c.DisableSSRFProtection,
		UserAgent:             "pdsgo/" + Version,
	}
}
