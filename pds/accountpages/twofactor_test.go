package accountpages_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

var codeShape = regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}$`)

// TestTwoFactor: two-factor sign-in by email turned on from the page; createSession then wants the mailed code
// (401 AuthFactorTokenRequired), the account sign-in page and the OAuth sign-in page ask for it, app passwords
// skip it; updateEmail's emailAuthFactor turns it off.
func TestTwoFactor(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	appPW := testpds.MustOK(t, e.pds.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "app"}, alice.AccessJwt))["password"].(string)

	turn := func(wantErr bool) {
		t.Helper()
		testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account/email"), chromedp.WaitVisible(chromedp.ID("two-factor-toggle")),
			chromedp.Click(chromedp.ID("two-factor-toggle")), chromedp.WaitVisible(chromedp.CSS("#notice, #form-error")))
		if got := testbrowserHas(t, ctx, "#form-error"); got != wantErr {
			t.Fatalf("toggle: error shown %v, want %v", got, wantErr)
		}
	}
	// Not with an unconfirmed address: the codes could not arrive.
	turn(true)
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))
	tok := e.mail.Next(t).Token(t)
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": tok}, alice.AccessJwt))
	turn(false)
	if s := text(t, ctx, "#two-factor-status"); s != "on" {
		t.Fatalf("status %q", s)
	}
	screenshot(t, ctx, "two-factor")

	// createSession.
	r := testpds.Login(t, e.pds, alice.Handle, alice.Password)
	testpds.WantStatus(t, r, 401, "AuthFactorTokenRequired")
	msg := e.mail.Next(t)
	code := msg.Token(t)
	if msg.To[0] != alice.Email || !codeShape.MatchString(code) {
		t.Fatalf("code mail to %v: %q", msg.To, code)
	}
	login := func(code string) *testpds.Response {
		return e.pds.Procedure("com.atproto.server.createSession", map[string]any{"identifier": alice.Handle, "password": alice.Password, "authFactorToken": code}, "")
	}
	testpds.WantStatus(t, login("AAAAA-AAAAA"), 400, "InvalidToken")
	sess := testpds.MustOK(t, login(code))
	if sess["emailAuthFactor"] != true {
		t.Errorf("createSession: %v", sess)
	}
	testpds.WantStatus(t, login(code), 400, "InvalidToken") // used once
	got := testpds.MustOK(t, e.pds.Query("com.atproto.server.getSession", nil, sess["accessJwt"].(string)))
	if got["emailAuthFactor"] != true {
		t.Errorf("getSession: %v", got)
	}
	testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, appPW)) // app passwords skip the code
	e.mail.None(t)

	// The account sign-in page asks for the code; a wrong one is refused.
	b, cancelB := e.open()
	defer cancelB()
	e.enterPassword(b, e.pds.URL+"/account", alice, "#code")
	screenshot(t, b, "sign-in-code")
	code = e.mail.Next(t).Token(t)
	clearMessages(t, b)
	testbrowser.Do(t, b, chromedp.SendKeys(chromedp.ID("code"), "AAAAA-AAAAA\r"), chromedp.WaitVisible(chromedp.ID("form-error")),
		chromedp.WaitVisible(chromedp.ID("code")))
	testbrowser.Do(t, b, chromedp.SendKeys(chromedp.ID("code"), strings.ToLower(code)+"\r"), chromedp.WaitVisible(chromedp.CSS("nav.account-nav")))

	// The OAuth sign-in page asks for it too.
	o, cancelO := e.open()
	defer cancelO()
	app := testoauthappNew(e)
	info, authURL := app.Start(t, "")
	e.enterPassword(o, authURL, alice, "#code")
	code = e.mail.Next(t).Token(t)
	testbrowser.Do(t, o, chromedp.SendKeys(chromedp.ID("code"), code+"\r"), chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	_, tokr := app.Finish(t, info, e.callback.Wait(t).Get("code"))
	if tokr.Subject != alice.DID {
		t.Errorf("OAuth subject %q", tokr.Subject)
	}

	// Off through updateEmail (the address is confirmed, so with the mailed update token).
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.requestEmailUpdate", nil, sess["accessJwt"].(string)))
	tok = e.mail.Next(t).Token(t)
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.updateEmail", map[string]any{"email": alice.Email, "emailAuthFactor": false, "token": tok}, sess["accessJwt"].(string)))
	if got := testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, alice.Password)); got["emailAuthFactor"] != false {
		t.Errorf("after turning off: %v", got)
	}
}

// TestTwoFactorDeactivated: a deactivated account with two-factor sign-in by email. createSession asks for the
// code and then signs in, reporting the account deactivated (as the reference); the account sign-in page takes
// the password and the mailed code and lands on the overview, where the account reactivates itself; the OAuth
// sign-in page, after the same two steps, refuses it, so no app gets access to a deactivated account.
func TestTwoFactorDeactivated(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.pds.CreateAccount("alice")
	e.turnOnTwoFactor(alice)
	testpds.MustOK(t, e.pds.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, alice.AccessJwt))
	status := func() map[string]any {
		return testpds.MustOK(t, e.pds.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {alice.DID}}, ""))
	}
	if st := status(); st["active"] != false {
		t.Fatalf("after deactivating: %v", st)
	}

	testpds.WantStatus(t, testpds.Login(t, e.pds, alice.Handle, alice.Password), 401, "AuthFactorTokenRequired")
	code := e.mail.Next(t).Token(t)
	sess := testpds.MustOK(t, e.pds.Procedure("com.atproto.server.createSession",
		map[string]any{"identifier": alice.Handle, "password": alice.Password, "authFactorToken": code}, ""))
	if sess["active"] != false || sess["status"] != "deactivated" || sess["emailAuthFactor"] != true {
		t.Errorf("createSession of the deactivated account: %v", sess)
	}

	// The OAuth sign-in page: password, code, then refused; no consent is offered.
	o, cancelO := e.open()
	defer cancelO()
	_, authURL := testoauthappNew(e).Start(t, "")
	e.enterPassword(o, authURL, alice, "#code")
	code = e.mail.Next(t).Token(t)
	testbrowser.Do(t, o, chromedp.SendKeys(chromedp.ID("code"), code+"\r"), chromedp.WaitVisible(chromedp.ID("form-error")))
	if msg := text(t, o, "#form-error"); !strings.Contains(msg, "not available") {
		t.Errorf("OAuth sign-in of the deactivated account: %q", msg)
	}
	if testbrowserHas(t, o, `button[value="approve"]`) {
		t.Error("the OAuth page offers consent for a deactivated account")
	}

	// The account pages: password, code, the overview says deactivated; reactivate.
	ctx, cancel := e.open()
	defer cancel()
	e.enterPassword(ctx, e.pds.URL+"/account", alice, "#code")
	code = e.mail.Next(t).Token(t)
	testbrowser.Do(t, ctx, chromedp.SendKeys(chromedp.ID("code"), code+"\r"), chromedp.WaitVisible(chromedp.ID("deactivated")))
	screenshot(t, ctx, "deactivated")
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.ID("reactivate")), chromedp.WaitVisible(chromedp.ID("notice")))
	if st := status(); st["active"] != true {
		t.Errorf("after reactivating: %v", st)
	}
	e.mail.None(t)
}
