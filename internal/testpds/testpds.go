// Package testpds starts a real PDS for tests: a real PLC directory (the reference @did-plc/server), real
// SQLite files in a temp directory and a real HTTP server on a loopback port, plus a small XRPC client.
//
// The helpers tests share sit beside it by concern: xrpc.go (calls and answer checks), sessions.go (logins,
// tokens), accounts.go, records.go (writes, repositories), blobs.go, firehose.go (subscribers, event checks),
// operator.go (admin API, mail), process.go (binaries, polling). A helper one test file uses stays there.
package testpds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/pds"
)

// PDS is a running test server.
type PDS struct {
	URL    string
	PLCURL string
	Config *pds.Config
	Server *pds.Server
	Client *http.Client
	t      testing.TB
}

// Options adjust the test server.
type Options struct {
	Env     map[string]string // extra PDS_* variables
	DataDir string            // reuse a data directory (restart tests); default a new temp dir
	PLCURL  string            // use this PLC directory; default the process-wide shared one
	// HTTPClient, if set, is the server's outbound client (pds.Options.HTTPClient): tests route handle and
	// did:web hosts to loopback servers through its transport.
	HTTPClient *http.Client
	// CrawlNotifyInterval is pds.Options.CrawlNotifyInterval (requestCrawl rate to PDS_CRAWLERS).
	CrawlNotifyInterval time.Duration
	// RateLimitClock is the rate limiters' clock (tests move it instead of waiting out windows). Rate limits are
	// off in the harness unless Env sets PDS_RATE_LIMITS_ENABLED=true.
	RateLimitClock func() time.Time
	// Logger, if set, is the server's logger (tests that read the log lines); default discards, or logs
	// warnings to the test log with -v.
	Logger *slog.Logger
}

// Start starts a PDS with its own PLC directory and data directory; both stop when the test ends.
func Start(t testing.TB, opts Options) *PDS {
	t.Helper()
	plcURL := opts.PLCURL
	if plcURL == "" {
		plcURL = testplc.Shared(t)
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	env := map[string]string{
		"PDS_HOSTNAME":        "localhost",
		"PDS_PORT":            strconv.Itoa(port),
		"PDS_DATA_DIRECTORY":  dataDir,
		"PDS_DID_PLC_URL":     plcURL,
		"PDS_INVITE_REQUIRED": "false",
		"PDS_ADMIN_PASSWORD":  "admin-pass",
		// Tests share one loopback IP: the reference's limits would throttle them. Rate-limit tests turn them on.
		"PDS_RATE_LIMITS_ENABLED": "false",
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg, err := pds.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.Logger != nil {
		log = opts.Logger
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := pds.New(context.Background(), cfg, pds.Options{Logger: log, HTTPClient: opts.HTTPClient, CrawlNotifyInterval: opts.CrawlNotifyInterval,
		RateLimits: pds.RateLimitOptions{Now: opts.RateLimitClock}})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	go srv.Serve(ln)
	p := &PDS{
		URL:    fmt.Sprintf("http://localhost:%d", port),
		PLCURL: plcURL,
		Config: cfg,
		Server: srv,
		Client: &http.Client{Timeout: 30 * time.Second},
		t:      t,
	}
	t.Cleanup(p.Stop)
	return p
}

// Stop shuts the server down (idempotent).
func (p *PDS) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Server.Shutdown(ctx)
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// Response is an XRPC response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

// ErrorName is the XRPC error name of an error response.
func (r *Response) ErrorName() string {
	s, _ := r.JSON()["error"].(string)
	return s
}

func (r *Response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// Query calls a GET method.
func (p *PDS) Query(nsid string, params url.Values, token string) *Response {
	p.t.Helper()
	u := p.URL + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.Do(req, token)
}

// Procedure calls a POST method with a JSON body (a []byte is sent as it is).
func (p *PDS) Procedure(nsid string, body any, token string) *Response {
	p.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			p.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, p.URL+"/xrpc/"+nsid, bytes.NewReader(raw))
	if err != nil {
		p.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return p.Do(req, token)
}

// Do sends a request with an optional bearer token.
func (p *PDS) Do(req *http.Request, token string) *Response {
	p.t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Account is a created test account.
type Account struct {
	DID, Handle, Email, Password string
	AccessJwt, RefreshJwt        string
}

// CreateAccount creates an account with handle <name>.test and fails the test on error.
func (p *PDS) CreateAccount(name string) *Account {
	p.t.Helper()
	a := &Account{Handle: name + ".test", Email: name + "@example.com", Password: "password-" + name}
	resp := p.Procedure("com.atproto.server.createAccount", map[string]any{
		"handle": a.Handle, "email": a.Email, "password": a.Password,
	}, "")
	if resp.Status != http.StatusOK {
		p.t.Fatalf("createAccount %s: %s", name, resp)
	}
	out := resp.JSON()
	a.DID, _ = out["did"].(string)
	a.AccessJwt, _ = out["accessJwt"].(string)
	a.RefreshJwt, _ = out["refreshJwt"].(string)
	return a
}
