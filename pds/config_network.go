package pds

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// The network a server joins. A real hostname gets what the official installer writes into pds.env (the
// Bluesky AppView and moderation service, the bsky.network relay, plc.directory), so that a server on a domain
// is seen by the app and the relays without further setup. localhost gets none of them, and its own PLC
// directory (identity/plcserver) so that nothing a local test does reaches the public directory.
const (
	DefaultPLCURL           = "https://plc.directory"
	DefaultAppViewURL       = "https://api.bsky.app"
	DefaultAppViewDID       = "did:web:api.bsky.app"
	DefaultReportServiceURL = "https://mod.bsky.app"
	DefaultReportServiceDID = "did:plc:ar7c4by46qjdydhdevvrndac"
	DefaultCrawler          = "https://bsky.network"
	// DefaultEmbeddedPLCAddr is where a localhost server's own directory listens, so that a second local server
	// can share it (PDS_DID_PLC_URL=http://127.0.0.1:2582).
	DefaultEmbeddedPLCAddr = "127.0.0.1:2582"
)

// loadNetworkDefaults settles the PLC directory, AppView, report service and crawlers (after loadServices).
// A variable set to "none" (or, through LoadConfigLookup, to "") turns a service off.
func (c *Config) loadNetworkDefaults(lookup Lookup, local bool) error {
	isSet := func(names ...string) bool {
		for _, n := range names {
			if _, ok := lookup(n); ok {
				return true
			}
		}
		return false
	}
	get := func(n string) string { v, _ := lookup(n); return strings.TrimSpace(v) }

	switch v := strings.TrimRight(get("PDS_DID_PLC_URL"), "/"); {
	case v == "embedded" || (v == "" && local):
		c.EmbeddedPLC = true
		c.EmbeddedPLCAddr = get("PDS_EMBEDDED_PLC_ADDR")
		if c.EmbeddedPLCAddr == "" {
			c.EmbeddedPLCAddr = DefaultEmbeddedPLCAddr
		}
		if _, _, err := net.SplitHostPort(c.EmbeddedPLCAddr); err != nil {
			return fmt.Errorf("PDS_EMBEDDED_PLC_ADDR: %w", err)
		}
	case v == "" || v == "none":
		if v == "none" {
			return fmt.Errorf("PDS_DID_PLC_URL: a PDS needs a PLC directory (a URL, or \"embedded\")")
		}
		c.PLCURL = DefaultPLCURL
	default:
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("PDS_DID_PLC_URL: not an http(s) URL: %q", v)
		}
		c.PLCURL = v
	}

	if !local && c.BskyAppView == nil && !isSet("PDS_BSKY_APP_VIEW_URL", "PDS_BSKY_APP_VIEW_DID") {
		c.BskyAppView = &ServiceConfig{URL: DefaultAppViewURL, DID: DefaultAppViewDID,
			CDNURLPattern: get("PDS_BSKY_APP_VIEW_CDN_URL_PATTERN")}
	}
	if !local && c.ReportService == nil && !isSet("PDS_REPORT_SERVICE_URL", "PDS_REPORT_SERVICE_DID", "PDS_MOD_SERVICE_URL", "PDS_MOD_SERVICE_DID") {
		c.ReportService = &ServiceConfig{URL: DefaultReportServiceURL, DID: DefaultReportServiceDID}
	}
	crawlers, set := lookup("PDS_CRAWLERS")
	switch {
	case strings.TrimSpace(crawlers) == "none":
		c.Crawlers = nil
	case set:
		c.Crawlers = splitList(crawlers)
	case !local:
		c.Crawlers = []string{DefaultCrawler}
	}
	return nil
}

// Network lists what the server talks to, for the start-up log: "off" for a service that is not configured.
func (c *Config) Network() []any {
	svc := func(s *ServiceConfig) string {
		if s == nil {
			return "off"
		}
		return s.URL + " (" + s.DID + ")"
	}
	plc := c.PLCURL
	if c.EmbeddedPLC {
		plc = "embedded " + plc + " (" + c.EmbeddedPLCPath() + ")"
	}
	crawlers := "off"
	if len(c.Crawlers) > 0 {
		crawlers = strings.Join(c.Crawlers, ",")
	}
	return []any{"plc_directory", plc, "appview", svc(c.BskyAppView), "report_service", svc(c.ReportService),
		"mod_service", svc(c.ModService), "crawlers", crawlers}
}

// EmbeddedPLCPath is the embedded directory's database.
func (c *Config) EmbeddedPLCPath() string { return filepath.Join(c.DataDirectory, "plc.sqlite") }
