package accountpages_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestSignIn: the sign-in page (layout with the server's name and links, security headers), a wrong password
// and an app password refused, sign-in remembered on the browser, sign-out; all by keyboard on a phone-sized
// window.
func TestSignIn(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.pds.CreateAccount("alice")
	ctx, cancel := e.open()
	defer cancel()

	// Headers of every page: strict CSP, no framing, no caching.
	f := newFormClient(t)
	resp := f.get(e.pds.URL + "/account")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'sha256-", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", resp.Header)
	}
	var device *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "oauth-device" {
			device = c
		}
	}
	if device == nil || !device.HttpOnly || device.SameSite != http.SameSiteLaxMode {
		t.Errorf("device cookie: %+v", device)
	}

	// The server's root page links here.
	if f.get(e.pds.URL + "/"); !strings.Contains(f.last, e.pds.URL+"/account") {
		t.Errorf("the root page does not link the account pages:\n%s", f.last)
	}
	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account"), chromedp.WaitVisible(chromedp.ID("identifier")))
	title := testbrowser.Run(t, ctx, chromedp.Title())
	page := text(t, ctx, "main")
	styled := testbrowser.Run(t, ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector("button")).backgroundColor === "rgb(29, 100, 216)"`))
	fits := testbrowser.Run(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
	// autofocus is applied after the page is shown, and later on a loaded machine: wait for it.
	var focused string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if focused = testbrowser.Run(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); focused == "identifier" || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(title, "Example PDS") || !styled || !fits || focused != "identifier" {
		t.Errorf("sign-in page: title %q, styled %v, fits %v, focus %q", title, styled, fits, focused)
	}
	for _, want := range []string{"Example PDS", "Privacy policy", "Terms of service", "Contact", "App passwords cannot be used here"} {
		if !strings.Contains(page, want) {
			t.Errorf("sign-in page lacks %q:\n%s", want, page)
		}
	}
	screenshot(t, ctx, "sign-in")

	// Wrong password, then an app password: both refused with the same message.
	appPW := testpds.MustOK(t, e.pds.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "phone"}, alice.AccessJwt))["password"].(string)
	for _, pw := range []string{"not the password", appPW} {
		testbrowser.Do(t, ctx,
			chromedp.Navigate(e.pds.URL+"/account/sign-in"),
			chromedp.WaitVisible(chromedp.ID("identifier")),
			chromedp.SendKeys(chromedp.ID("identifier"), alice.Handle),
			chromedp.SendKeys(chromedp.ID("password"), pw+"\r"),
			chromedp.WaitVisible(chromedp.ID("form-error")),
		)
		if msg := text(t, ctx, "#form-error"); msg != "Invalid identifier or password" {
			t.Errorf("password %q: error %q", pw, msg)
		}
	}

	e.signIn(ctx, alice)
	home := text(t, ctx, "main")
	for _, want := range []string{"@" + alice.Handle, alice.DID, alice.Email} {
		if !strings.Contains(home, want) {
			t.Errorf("overview lacks %q:\n%s", want, home)
		}
	}
	screenshot(t, ctx, "overview")
	// Remembered: a new visit goes straight to the account.
	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account/sessions"), chromedp.WaitVisible(chromedp.ID("apps")))
	// Sign out (keyboard: focus the button, Enter) and the sign-in form is back.
	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/account/sign-out"] button`)),
		chromedp.Focus(chromedp.CSS(`form[action="/account/sign-out"] button`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.ID("identifier")),
	)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.pds.URL+"/account/app-passwords"), chromedp.WaitVisible(chromedp.ID("identifier"))); err != nil {
		t.Fatalf("signed out, the pages still open: %v", err)
	}
}

// TestSessions: an OAuth app (indigo's client, approved in the browser) and a createSession session are listed
// with their app and permissions; each is revoked from the page and its next refresh is refused; "sign out
// everywhere" ends the rest and this browser's sign-in.
func TestSessions(t *testing.T) {
	e, alice, ctx := newSignedIn(t)

	// An app connects: the browser is already signed in, so the OAuth page goes straight to consent.
	sess := e.connectApp(ctx, alice)
	// A second app stays connected until "sign out everywhere".
	sess2 := e.connectApp(ctx, alice)

	legacy := testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, alice.Password))
	legacyRefresh := legacy["refreshJwt"].(string)

	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account/sessions"), chromedp.WaitVisible(chromedp.ID("apps")))
	page := text(t, ctx, "main")
	for _, want := range []string{"localhost", "Create, update and delete any of your records", "Connected ", "last used", "Account password", "Sign out everywhere"} {
		if !strings.Contains(page, want) {
			t.Errorf("sessions page lacks %q:\n%s", want, page)
		}
	}
	n := testbrowser.Run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("input[name=kind][value=oauth]").length`))
	if n != 2 {
		t.Errorf("%d OAuth sessions listed, want 2", n)
	}
	screenshot(t, ctx, "sessions")

	// Disconnect the first app (the first listed is the newest: app2; pick the one of sess by its id).
	ids := testbrowser.Run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input[name=kind][value=oauth]")].map(i => i.form.querySelector("input[name=session]").value)`))
	if len(ids) != 2 {
		t.Fatalf("session ids %v", ids)
	}
	// Revoke one, then find which app lost its session: exactly one of the two refreshes must fail.
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`form:has(input[value="`+ids[0]+`"]) button`)), chromedp.WaitVisible(chromedp.ID("notice")))
	if msg := text(t, ctx, "#notice"); msg != "The session has ended." {
		t.Errorf("notice %q", msg)
	}
	_, err1 := sess.RefreshTokens(context.Background())
	_, err2 := sess2.RefreshTokens(context.Background())
	if (err1 == nil) == (err2 == nil) {
		t.Fatalf("after disconnecting one app: refresh errors %v and %v (exactly one must fail)", err1, err2)
	}

	// End the password session: its refresh token is refused.
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`form:has(input[name=kind][value=legacy]) button`)), chromedp.WaitVisible(chromedp.ID("notice")))
	r := e.pds.Procedure("com.atproto.server.refreshSession", nil, legacyRefresh)
	testpds.WantStatus(t, r, 400, "ExpiredToken")

	// Sign out everywhere: the other app and a new password session end, and this browser is signed out.
	other := testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, alice.Password))["refreshJwt"].(string)
	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account/sessions"), chromedp.WaitVisible(chromedp.CSS(`form[action="/account/sessions/revoke-all"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/account/sessions/revoke-all"] button`)), chromedp.WaitVisible(chromedp.ID("notice")))
	testpds.WantStatus(t, e.pds.Procedure("com.atproto.server.refreshSession", nil, other), 400, "ExpiredToken")
	if _, err := sess.RefreshTokens(context.Background()); err == nil {
		t.Error("an app still refreshes after sign out everywhere")
	}
	if _, err := sess2.RefreshTokens(context.Background()); err == nil {
		t.Error("an app still refreshes after sign out everywhere")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.pds.URL+"/account"), chromedp.WaitVisible(chromedp.ID("identifier"))); err != nil {
		t.Fatalf("the browser is still signed in: %v", err)
	}
}

// TestAppPasswords: create (privileged, shown once), use, revoke from the page.
func TestAppPasswords(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account/app-passwords"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "my phone"),
		chromedp.Click(chromedp.ID("privileged")),
		chromedp.Submit(chromedp.ID("name")),
		chromedp.WaitVisible(chromedp.ID("secret")),
	)
	pw := text(t, ctx, "#secret")
	shown := text(t, ctx, "#new-password")
	screenshot(t, ctx, "app-passwords")
	if !strings.Contains(shown, "(privileged)") || !strings.Contains(shown, "will not be shown again") {
		t.Errorf("new password box: %q", shown)
	}
	login := testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, pw))
	if scope := testpds.JWTScope(t, login["accessJwt"].(string)); scope != "com.atproto.appPassPrivileged" {
		t.Errorf("app password session scope %q", scope)
	}
	// Reloading the page never shows the password again.
	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account/app-passwords"), chromedp.WaitVisible(chromedp.ID("name")))
	if page := text(t, ctx, "main"); strings.Contains(page, pw) || !strings.Contains(page, "my phone") || !strings.Contains(page, "privileged") {
		t.Errorf("list after reload:\n%s", page)
	}
	// The same name again is refused.
	testbrowser.Do(t, ctx, chromedp.SendKeys(chromedp.ID("name"), "my phone"), chromedp.Submit(chromedp.ID("name")), chromedp.WaitVisible(chromedp.ID("form-error")))
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/account/app-passwords/revoke"] button`)), chromedp.WaitVisible(chromedp.ID("notice")))
	testpds.WantStatus(t, testpds.Login(t, e.pds, alice.Handle, pw), 401, "AuthenticationRequired")
	testpds.WantStatus(t, e.pds.Procedure("com.atproto.server.refreshSession", nil, login["refreshJwt"].(string)), 400, "ExpiredToken")
}

// TestNegative: forms without their CSRF token, from another origin, or naming an account not signed in on this
// browser change nothing; wrong passwords are rate limited.
func TestNegative(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.pds.CreateAccount("alice")
	bob := e.pds.CreateAccount("bob")
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "bobs"}, bob.AccessJwt))
	base := e.pds.URL

	a := newFormClient(t)
	if resp := a.signIn(base, alice.Handle, alice.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, a.last)
	}
	a.get(base + "/account/app-passwords")
	token := a.csrf()
	create := url.Values{"account": {alice.DID}, "csrf_token": {token}, "name": {"x"}}

	// No token, a wrong token, another origin.
	for name, form := range map[string]url.Values{
		"no token":    {"account": {alice.DID}, "name": {"x"}},
		"wrong token": {"account": {alice.DID}, "csrf_token": {strings.Repeat("A", 43)}, "name": {"x"}},
	} {
		if resp := a.post(base+"/account/app-passwords", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", base+"/account/app-passwords", strings.NewReader(create.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp := a.do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("other origin: %d", resp.StatusCode)
	}
	// A browser signed in as alice acting on bob, with alice's token or none that could be bob's.
	for _, form := range []url.Values{
		{"account": {bob.DID}, "csrf_token": {token}, "name": {"bobs"}},
		{"account": {bob.DID}, "csrf_token": {token}},
	} {
		if resp := a.post(base+"/account/app-passwords/revoke", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice's browser on bob's app password: %d", resp.StatusCode)
		}
		if resp := a.post(base+"/account/sessions/revoke-all", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice's browser signing bob out: %d", resp.StatusCode)
		}
	}
	list := testpds.MustOK(t, e.pds.Query("com.atproto.server.listAppPasswords", nil, bob.AccessJwt))
	if n := len(list["passwords"].([]any)); n != 1 {
		t.Errorf("bob has %d app passwords, want 1", n)
	}
	list = testpds.MustOK(t, e.pds.Query("com.atproto.server.listAppPasswords", nil, alice.AccessJwt))
	if n := len(list["passwords"].([]any)); n != 0 {
		t.Errorf("a refused form created an app password: %v", list)
	}
	// The real form works.
	if resp := a.post(base+"/account/app-passwords", create); resp.StatusCode != http.StatusOK || !strings.Contains(a.last, `id="secret"`) {
		t.Errorf("create: %d", resp.StatusCode)
	}
	// Without signing in, nothing is shown but the sign-in form.
	anon := newFormClient(t)
	anon.get(base + "/account/sessions")
	if !strings.Contains(anon.last, `action="/account/sign-in"`) || strings.Contains(anon.last, alice.DID) {
		t.Errorf("signed-out browser sees:\n%s", anon.last)
	}
	// A sign-in form posted without its token.
	if resp := anon.post(base+"/account/sign-in", url.Values{"identifier": {alice.Handle}, "password": {alice.Password}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without token: %d", resp.StatusCode)
	}

	// Too many wrong passwords for one identifier: 30 per 5 minutes, then refused even with the right one.
	m := newFormClient(t)
	for i := 0; i < 30; i++ {
		if resp := m.signIn(base, bob.Handle, "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	if resp := m.signIn(base, bob.Handle, bob.Password); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(m.last, "Too many sign-in attempts") {
		t.Errorf("31st attempt: %d", resp.StatusCode)
	}
}
