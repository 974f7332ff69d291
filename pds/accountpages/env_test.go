package accountpages_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"
	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testoauthapp"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// env is a real server (testpds: real stores, PLC directory, loopback HTTP) with the account pages and the
// OAuth provider mounted, a real SMTP server, and a headless chromium.
type env struct {
	t        *testing.T
	dns      *dnsServer
	pds      *testpds.PDS
	mail     *testsmtp.Server
	open     func() (context.Context, context.CancelFunc)
	callback *testoauthapp.Callback
}

func newEnv(t *testing.T, extra map[string]string) *env {
	t.Helper()
	vars := map[string]string{
		"PDS_SERVICE_NAME":          "Example PDS",
		"PDS_PRIVACY_POLICY_URL":    "https://example.com/privacy",
		"PDS_TERMS_OF_SERVICE_URL":  "https://example.com/tos",
		"PDS_CONTACT_EMAIL_ADDRESS": "admin@example.com",
	}
	for k, v := range extra {
		vars[k] = v
	}
	// Custom-domain handles: a DNS server on loopback answers _atproto TXT queries; HTTPS well-known files of
	// user-named hosts are not served (the server's outbound client reaches only the PLC directory).
	d := startDNS(t)
	mail := testsmtp.Start(t, testsmtp.Options{})
	vars["PDS_HANDLE_DNS_SERVER"] = d.addr
	vars["PDS_EMAIL_SMTP_URL"] = mail.URL()
	vars["PDS_EMAIL_FROM_ADDRESS"] = "PDS <noreply@pds.test>"
	plcURL := testplc.Shared(t)
	plcHost := strings.TrimPrefix(plcURL, "http://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == plcHost {
			return http.DefaultTransport.RoundTrip(req)
		}
		return nil, fmt.Errorf("test transport: no route to %s", req.URL)
	})}
	p := testpds.Start(t, testpds.Options{Env: vars, PLCURL: plcURL, HTTPClient: client})
	return &env{t: t, dns: d, pds: p, mail: mail, open: testbrowser.New(t), callback: testoauthapp.NewCallback(t)}
}

// newSignedIn is the usual start of a page test: a server with the default settings, the account alice, and a
// browser signed in as alice (closed when the test ends).
func newSignedIn(t *testing.T) (*env, *testpds.Account, context.Context) {
	t.Helper()
	e := newEnv(t, nil)
	alice := e.pds.CreateAccount("alice")
	ctx, cancel := e.open()
	t.Cleanup(cancel)
	e.signIn(ctx, alice)
	return e, alice, ctx
}

// signIn signs acct in on the browser of ctx through the account sign-in page.
func (e *env) signIn(ctx context.Context, acct *testpds.Account) {
	e.t.Helper()
	e.enterPassword(ctx, e.pds.URL+"/account", acct, "nav.account-nav")
}

// enterPassword opens a sign-in page (the account pages' or the OAuth pages'), types acct's handle and password,
// and waits for what answers them (sel: the signed-in page, the code form, an error).
func (e *env) enterPassword(ctx context.Context, page string, acct *testpds.Account, sel string) {
	e.t.Helper()
	testbrowser.Do(e.t, ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("identifier")),
		chromedp.SendKeys(chromedp.ID("identifier"), acct.Handle),
		chromedp.SendKeys(chromedp.ID("password"), acct.Password+"\r"),
		chromedp.WaitVisible(chromedp.CSS(sel)),
	)
}

// connectApp connects a new OAuth app (indigo's client) to acct through the consent page of the browser of
// ctx, which is signed in as acct already, and returns the app's session.
func (e *env) connectApp(ctx context.Context, acct *testpds.Account) *ioauth.ClientSession {
	e.t.Helper()
	app := testoauthappNew(e)
	info, authURL := app.Start(e.t, acct.Handle)
	testbrowser.Do(e.t, ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	sess, _ := app.Finish(e.t, info, e.callback.Wait(e.t).Get("code"))
	return sess
}

// turnOnTwoFactor confirms acct's address and turns on two-factor sign-in by email through the API
// (updateEmail's emailAuthFactor, with the mailed update token), using up the mails it causes.
func (e *env) turnOnTwoFactor(acct *testpds.Account) {
	e.t.Helper()
	testpds.MustOK(e.t, e.pds.Procedure("com.atproto.server.requestEmailConfirmation", nil, acct.AccessJwt))
	tok := e.mail.Next(e.t).Token(e.t)
	testpds.MustOK(e.t, e.pds.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": acct.Email, "token": tok}, acct.AccessJwt))
	testpds.MustOK(e.t, e.pds.Procedure("com.atproto.server.requestEmailUpdate", nil, acct.AccessJwt))
	tok = e.mail.Next(e.t).Token(e.t)
	testpds.MustOK(e.t, e.pds.Procedure("com.atproto.server.updateEmail", map[string]any{"email": acct.Email, "emailAuthFactor": true, "token": tok}, acct.AccessJwt))
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return testbrowser.Run(t, ctx, chromedp.Text(chromedp.CSS(sel)))
}

// screenshot saves the browser's view as docs/account-pages/<name>.png when ACCOUNT_PAGES_SCREENSHOTS names
// the docs directory (make docs: the pictures in the repository come from this).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("ACCOUNT_PAGES_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := testbrowser.Run(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// formClient is a browser without JavaScript for the negative cases: cookies, GET a page, POST a form.
type formClient struct {
	t    *testing.T
	c    *http.Client
	last string
}

func newFormClient(t *testing.T) *formClient {
	jar, _ := cookiejar.New(nil)
	return &formClient{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (f *formClient) do(req *http.Request) *http.Response {
	f.t.Helper()
	resp, err := f.c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.last = string(b)
	return resp
}

func (f *formClient) get(u string) *http.Response {
	req, _ := http.NewRequest("GET", u, nil)
	return f.do(req)
}

func (f *formClient) post(u string, form url.Values) *http.Response {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf is the CSRF token of the last page.
func (f *formClient) csrf() string {
	f.t.Helper()
	m := csrfRE.FindStringSubmatch(f.last)
	if m == nil {
		f.t.Fatalf("no csrf token on the page:\n%s", f.last)
	}
	return m[1]
}

// signIn signs in with the sign-in form and returns the response to the POST.
func (f *formClient) signIn(base, identifier, password string) *http.Response {
	f.get(base + "/account/sign-in")
	return f.post(base+"/account/sign-in", url.Values{"csrf_token": {f.csrf()}, "identifier": {identifier}, "password": {password}})
}

func testoauthappNew(e *env) *testoauthapp.App {
	return testoauthapp.NewApp(e.t, e.pds.URL, e.callback.URL())
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// dnsServer answers TXT queries from a map on loopback.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	txt  map[string]string // "_atproto.<host>." -> value
}

func startDNS(t *testing.T) *dnsServer {
	d := &dnsServer{txt: map[string]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		d.mu.Lock()
		for _, q := range r.Question {
			if v, ok := d.txt[strings.ToLower(q.Name)]; ok && q.Qtype == dns.TypeTXT {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
			}
		}
		d.mu.Unlock()
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	d.addr = pc.LocalAddr().String()
	return d
}

func (d *dnsServer) setTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[name] = value
}

// testbrowserHas reports whether an element matching sel is on the page.
func testbrowserHas(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	return testbrowser.Run(t, ctx, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(sel)+`) !== null`))
}

// clearMessages removes the page's notice and error boxes, so that waiting for one after a click waits for the
// answer to that click and not the previous one.
func clearMessages(t *testing.T, ctx context.Context) {
	t.Helper()
	testbrowser.Run(t, ctx, chromedp.Evaluate[bool](`document.querySelectorAll("#notice,#form-error,#checked").forEach(e => e.remove()); true`))
}
