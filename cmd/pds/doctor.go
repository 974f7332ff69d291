package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/mailer"
)

// doctor's verdicts.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "FAIL"
	checkSkip = "skip"
)

type checkResult struct {
	name, status, detail string
}

// doctor checks a configuration, before or after going live, and prints a checklist.
type doctor struct {
	cfg       *pds.Config
	resolver  *net.Resolver
	httpsPort string
	roots     *x509.CertPool // nil: system roots
	mailTo    string
	timeout   time.Duration
	results   []checkResult
}

func runDoctor(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("doctor")
	envFile := fs.String("env-file", "", "the server's pds.env (default $PDS_ENV_FILE)")
	dnsServer := fs.String("dns-server", "", "resolve names with this DNS server (host:port) instead of the system's")
	httpsPort := fs.String("https-port", "443", "port of the public HTTPS check")
	caCerts := fs.String("ca-certs", "", "PEM roots trusted for the public HTTPS check instead of the system's (a private CA)")
	mailTo := fs.String("mail-to", "", "also send a test mail to this address")
	timeout := fs.Duration("timeout", 10*time.Second, "per check")
	if rest, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", rest[0])}
	}
	if err := cl.withEnvFile(*envFile); err != nil {
		return err
	}
	d := &doctor{httpsPort: *httpsPort, mailTo: *mailTo, timeout: *timeout, resolver: net.DefaultResolver}
	cfg, err := pds.InspectConfig(cl.lookupenv)
	if err != nil {
		d.add("configuration", checkFail, err.Error())
		d.print(cl.stdout)
		return errors.New("the configuration does not load")
	}
	d.cfg = cfg
	d.add("configuration", checkOK, fmt.Sprintf("hostname %s, public URL %s", cfg.Hostname, cfg.PublicURL))
	if *dnsServer == "" && cfg.HandleDNSServer != "" {
		*dnsServer = cfg.HandleDNSServer
	}
	if *dnsServer != "" {
		addr := *dnsServer
		d.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}
	}
	if *caCerts != "" {
		b, err := os.ReadFile(*caCerts)
		if err != nil {
			return err
		}
		d.roots = x509.NewCertPool()
		if !d.roots.AppendCertsFromPEM(b) {
			return usageError{fmt.Errorf("--ca-certs: no PEM certificates in %s", *caCerts)}
		}
	}
	d.checkDNS(ctx)
	d.checkHTTPS(ctx)
	d.checkServices(ctx)
	d.checkSMTP(ctx)
	d.checkDataDirectory()
	d.checkDisk()
	failed := d.print(cl.stdout)
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

func (d *doctor) add(name, status, detail string) {
	d.results = append(d.results, checkResult{name, status, detail})
}

func (d *doctor) print(w io.Writer) (failed int) {
	warned := 0
	for _, r := range d.results {
		fmt.Fprintf(w, "%-5s %-22s %s\n", r.status, r.name, r.detail)
		switch r.status {
		case checkFail:
			failed++
		case checkWarn:
			warned++
		}
	}
	fmt.Fprintf(w, "%d failed, %d warnings, %d checks\n", failed, warned, len(d.results))
	return failed
}

func (d *doctor) local() bool { return d.cfg.Hostname == "localhost" }

func (d *doctor) lookup(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	addrs, err := d.resolver.LookupHost(ctx, name)
	slices.Sort(addrs)
	return addrs, err
}

// checkDNS: the hostname resolves, and so does a made-up name under the first handle domain (the wildcard
// record every hosted handle needs), to the same addresses.
func (d *doctor) checkDNS(ctx context.Context) {
	if d.local() {
		d.add("dns", checkSkip, "localhost")
		return
	}
	host, err := d.lookup(ctx, d.cfg.Hostname)
	if err != nil || len(host) == 0 {
		d.add("dns hostname", checkFail, fmt.Sprintf("%s does not resolve: %v (an A/AAAA record to this server)", d.cfg.Hostname, err))
	} else {
		d.add("dns hostname", checkOK, d.cfg.Hostname+" -> "+strings.Join(host, " "))
	}
	if len(d.cfg.ServiceHandleDomains) == 0 {
		return
	}
	b := make([]byte, 4)
	rand.Read(b)
	probe := "doctor-" + hex.EncodeToString(b) + d.cfg.ServiceHandleDomains[0]
	handle, err := d.lookup(ctx, probe)
	switch {
	case err != nil || len(handle) == 0:
		d.add("dns handles", checkFail, fmt.Sprintf("%s does not resolve: %v (a wildcard record *%s, for handles)", probe, err, d.cfg.ServiceHandleDomains[0]))
	case len(host) > 0 && !slices.Equal(host, handle):
		d.add("dns handles", checkWarn, fmt.Sprintf("%s -> %s, but the hostname -> %s", probe, strings.Join(handle, " "), strings.Join(host, " ")))
	default:
		d.add("dns handles", checkOK, probe+" -> "+strings.Join(handle, " "))
	}
}

// checkHTTPS: the public URL answers /xrpc/_health over HTTPS with a certificate valid for the hostname.
func (d *doctor) checkHTTPS(ctx context.Context) {
	if d.local() {
		d.add("https", checkSkip, "localhost")
		return
	}
	dialer := &net.Dialer{Timeout: d.timeout, Resolver: d.resolver}
	client := &http.Client{Timeout: d.timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: d.roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, net.JoinHostPort(host, d.httpsPort))
		},
	}}
	defer client.CloseIdleConnections()
	url := "https://" + d.cfg.Hostname + "/xrpc/_health"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		d.add("https", checkFail, fmt.Sprintf("%s: %v", url, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.add("https", checkFail, fmt.Sprintf("%s: HTTP %d", url, resp.StatusCode))
		return
	}
	leaf := resp.TLS.PeerCertificates[0]
	left := time.Until(leaf.NotAfter)
	detail := fmt.Sprintf("%s: certificate valid until %s, issuer %s", url, leaf.NotAfter.Format(time.DateOnly), leaf.Issuer)
	if left < 14*24*time.Hour {
		d.add("https", checkWarn, detail+": expires soon")
		return
	}
	d.add("https", checkOK, detail)
}

// checkServices: the PLC directory, AppView, report and moderation services and crawlers answer HTTP.
func (d *doctor) checkServices(ctx context.Context) {
	client := &http.Client{Timeout: d.timeout}
	defer client.CloseIdleConnections()
	reach := func(name, base, path string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			d.add(name, checkFail, err.Error())
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			d.add(name, checkFail, fmt.Sprintf("%s unreachable: %v", base, err))
			return
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			d.add(name, checkFail, fmt.Sprintf("%s: HTTP %d", base+path, resp.StatusCode))
			return
		}
		d.add(name, checkOK, base)
	}
	if d.cfg.EmbeddedPLC {
		d.add("plc directory", checkOK, "embedded ("+d.cfg.EmbeddedPLCPath()+"), started by pds serve")
	} else {
		reach("plc directory", d.cfg.PLCURL, "/_health")
	}
	for _, s := range []struct {
		name string
		svc  *pds.ServiceConfig
	}{{"appview", d.cfg.BskyAppView}, {"report service", d.cfg.ReportService}, {"moderation service", d.cfg.ModService}} {
		if s.svc == nil {
			status := checkSkip
			if !d.local() && s.name == "appview" {
				status = checkWarn // the app shows nothing without one
			}
			d.add(s.name, status, "not configured")
			continue
		}
		reach(s.name, s.svc.URL, "/xrpc/_health")
	}
	if len(d.cfg.Crawlers) == 0 {
		status := checkSkip
		if !d.local() {
			status = checkWarn // no relay hears of the server
		}
		d.add("crawlers", status, "none: no relay is told about this server")
	}
	for _, c := range d.cfg.Crawlers {
		reach("crawler", strings.TrimRight(c, "/"), "/xrpc/_health")
	}
}

// checkSMTP logs in to the SMTP server, and sends a test mail with --mail-to.
func (d *doctor) checkSMTP(ctx context.Context) {
	if d.cfg.EmailSMTPURL == "" {
		status := checkSkip
		if !d.local() {
			status = checkWarn
		}
		d.add("smtp", status, "PDS_EMAIL_SMTP_URL not set: mail (confirmation, password reset, PLC tokens) is only logged")
		return
	}
	m, err := mailer.NewSMTP(d.cfg.EmailSMTPURL, d.cfg.EmailFromAddress, mailer.WithTimeout(d.timeout))
	if err != nil {
		d.add("smtp", checkFail, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if v, ok := m.(mailer.Verifier); ok {
		if err := v.Verify(ctx); err != nil {
			d.add("smtp", checkFail, "login: "+err.Error())
			return
		}
	}
	if d.mailTo == "" {
		d.add("smtp", checkOK, "logged in (--mail-to ADDRESS sends a test mail)")
		return
	}
	if err := m.Send(ctx, d.mailTo, "pds doctor: test mail", "This is a test mail from "+d.cfg.Hostname+".", ""); err != nil {
		d.add("smtp", checkFail, "test mail: "+err.Error())
		return
	}
	d.add("smtp", checkOK, "test mail sent to "+d.mailTo)
}

// checkDataDirectory: it exists (or will be created), is writable by this user, is not readable by others,
// and secrets.json is private.
func (d *doctor) checkDataDirectory() {
	dir := d.cfg.DataDirectory
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		d.add("data directory", checkWarn, dir+" does not exist yet (pds serve creates it, mode 700)")
		return
	}
	if err != nil || !fi.IsDir() {
		d.add("data directory", checkFail, fmt.Sprintf("%s: not a directory: %v", dir, err))
		return
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		d.add("data directory", checkFail, fmt.Sprintf("%s is not writable by this user (uid %d): %v", dir, os.Getuid(), err))
		return
	}
	f.Close()
	os.Remove(f.Name())
	if si, err := os.Stat(filepath.Join(dir, "secrets.json")); err == nil && si.Mode().Perm()&0o077 != 0 {
		d.add("data directory", checkFail, fmt.Sprintf("secrets.json is %v: readable by others (chmod 600)", si.Mode().Perm()))
		return
	}
	if fi.Mode().Perm()&0o007 != 0 {
		d.add("data directory", checkWarn, fmt.Sprintf("%s is %v: others can read it (chmod 700)", dir, fi.Mode().Perm()))
		return
	}
	d.add("data directory", checkOK, dir+" writable, private")
}

func (d *doctor) checkDisk() {
	dir := d.cfg.DataDirectory
	for {
		if _, err := os.Stat(dir); err == nil || dir == filepath.Dir(dir) {
			break
		}
		dir = filepath.Dir(dir)
	}
	free, err := freeBytes(dir)
	if err != nil {
		d.add("disk", checkWarn, err.Error())
		return
	}
	detail := fmt.Sprintf("%.1f GiB free at %s", float64(free)/(1<<30), dir)
	switch {
	case free < 1<<30:
		d.add("disk", checkFail, detail)
	case free < 5<<30:
		d.add("disk", checkWarn, detail)
	default:
		d.add("disk", checkOK, detail)
	}
}
