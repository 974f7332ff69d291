package pds_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/pdsgo/pds/pds"
)

func loadLookup(t *testing.T, env map[string]string) (*pds.Config, error) {
	t.Helper()
	if _, ok := env["PDS_DATA_DIRECTORY"]; !ok {
		env["PDS_DATA_DIRECTORY"] = t.TempDir()
	}
	return pds.LoadConfigLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestNetworkDefaults(t *testing.T) {
	t.Parallel()
	// localhost: the embedded directory, no AppView, report service or crawler.
	c, err := loadLookup(t, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.EmbeddedPLC || c.PLCURL != "" || c.EmbeddedPLCAddr != "127.0.0.1:2582" || c.BskyAppView != nil || c.ReportService != nil || len(c.Crawlers) != 0 {
		t.Fatalf("localhost: %+v", c)
	}
	// localhost told to use a directory uses it.
	c, err = loadLookup(t, map[string]string{"PDS_DID_PLC_URL": "http://127.0.0.1:2582/"})
	if err != nil || c.EmbeddedPLC || c.PLCURL != "http://127.0.0.1:2582" {
		t.Fatalf("localhost with PDS_DID_PLC_URL: %+v %v", c, err)
	}

	// A real hostname: what the official installer writes.
	c, err = loadLookup(t, map[string]string{"PDS_HOSTNAME": "pds.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c.EmbeddedPLC || c.PLCURL != "https://plc.directory" ||
		c.BskyAppView == nil || c.BskyAppView.URL != "https://api.bsky.app" || c.BskyAppView.DID != "did:web:api.bsky.app" ||
		c.ReportService == nil || c.ReportService.URL != "https://mod.bsky.app" || c.ReportService.DID != "did:plc:ar7c4by46qjdydhdevvrndac" ||
		strings.Join(c.Crawlers, ",") != "https://bsky.network" || c.ModService != nil {
		t.Fatalf("production defaults: %+v", c)
	}
	net := fmt.Sprint(c.Network()...)
	for _, want := range []string{"https://plc.directory", "https://api.bsky.app (did:web:api.bsky.app)", "https://bsky.network"} {
		if !strings.Contains(net, want) {
			t.Fatalf("Network() lacks %q: %s", want, net)
		}
	}

	// Each is overridable, or turned off with "none" or an explicit empty value.
	c, err = loadLookup(t, map[string]string{"PDS_HOSTNAME": "pds.example.com",
		"PDS_BSKY_APP_VIEW_URL": "https://appview.example.com", "PDS_BSKY_APP_VIEW_DID": "did:web:appview.example.com",
		"PDS_REPORT_SERVICE_URL": "none", "PDS_CRAWLERS": "", "PDS_DID_PLC_URL": "https://plc.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BskyAppView.URL != "https://appview.example.com" || c.ReportService != nil || len(c.Crawlers) != 0 || c.PLCURL != "https://plc.example.com" {
		t.Fatalf("overrides: %+v", c)
	}
	c, err = loadLookup(t, map[string]string{"PDS_HOSTNAME": "pds.example.com", "PDS_BSKY_APP_VIEW_URL": "", "PDS_CRAWLERS": "none",
		"PDS_MOD_SERVICE_URL": "https://ozone.example.com", "PDS_MOD_SERVICE_DID": "did:web:ozone.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BskyAppView != nil || len(c.Crawlers) != 0 || c.ReportService == nil || c.ReportService.URL != "https://ozone.example.com" {
		t.Fatalf("off / mod service as report service: %+v", c)
	}
	// Through LoadConfig (no way to say "set to empty"), "none" turns a service off.
	dir := t.TempDir()
	c, err = pds.LoadConfig(func(k string) string {
		return map[string]string{"PDS_HOSTNAME": "pds.example.com", "PDS_DATA_DIRECTORY": dir, "PDS_BSKY_APP_VIEW_URL": "none"}[k]
	})
	if err != nil || c.BskyAppView != nil || c.ReportService == nil {
		t.Fatalf("LoadConfig none: %+v %v", c, err)
	}
	for _, bad := range []map[string]string{{"PDS_DID_PLC_URL": "none"}, {"PDS_DID_PLC_URL": "ftp://x"}, {"PDS_EMBEDDED_PLC_ADDR": "nope"}} {
		if _, err := loadLookup(t, bad); err == nil {
			t.Fatalf("%v: accepted", bad)
		}
	}
}

// TestEmbeddedPLCServesTheServer: a localhost server without PDS_DID_PLC_URL creates DIDs in its own directory.
func TestEmbeddedPLCServesTheServer(t *testing.T) {
	t.Parallel()
	c, err := loadLookup(t, map[string]string{"PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0", "PDS_ADMIN_PASSWORD": "x"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pds.New(context.Background(), c, pds.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(c.PLCURL, "http://127.0.0.1:") {
		t.Fatalf("PLCURL %q", c.PLCURL)
	}
	resp, err := http.Get(c.PLCURL + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("embedded directory health: %d", resp.StatusCode)
	}
	srv.Close()
	if _, err := http.Get(c.PLCURL + "/_health"); err == nil {
		t.Fatal("embedded directory still serving after Close")
	}
}

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	c, err := loadLookup(t, map[string]string{"PDS_HOSTNAME": "pds.example.com", "PDS_TLS": "auto", "PDS_ADMIN_EMAIL": "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS.Auto || c.TLS.HTTPSAddr != ":443" || c.TLS.HTTPAddr != ":80" || c.TLS.ACMEEmail != "ops@example.com" ||
		c.TLS.ACMEDirectoryURL != pds.DefaultACMEDirectoryURL || c.BindAddress != "127.0.0.1" {
		t.Fatalf("PDS_TLS=auto: %+v bind %s", c.TLS, c.BindAddress)
	}
	if c, err = loadLookup(t, map[string]string{"PDS_HOSTNAME": "pds.example.com"}); err != nil || c.TLS.Auto || c.BindAddress != "0.0.0.0" {
		t.Fatalf("default: %+v %v", c, err)
	}
	for _, bad := range []map[string]string{{"PDS_TLS": "auto"}, {"PDS_HOSTNAME": "pds.example.com", "PDS_TLS": "yes"},
		{"PDS_HOSTNAME": "pds.example.com", "PDS_TLS": "auto", "PDS_TLS_HTTPS_ADDR": "443"}} {
		if _, err := loadLookup(t, bad); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
