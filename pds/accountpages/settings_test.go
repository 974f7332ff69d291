package accountpages_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestPassword: changing the password ends every other session (password sessions, apps, other browsers) and
// keeps this browser signed in; the reset flow from the sign-in page sets a new one with the mailed code.
func TestPassword(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	other, cancelOther := e.open()
	defer cancelOther()
	e.signIn(other, alice)

	sess := e.connectApp(ctx, alice)
	legacy := testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, alice.Password))["refreshJwt"].(string)

	change := func(current, next, confirm string) {
		t.Helper()
		testbrowser.Do(t, ctx,
			chromedp.Navigate(e.pds.URL+"/account/password"),
			chromedp.WaitVisible(chromedp.ID("current")),
			chromedp.SendKeys(chromedp.ID("current"), current),
			chromedp.SendKeys(chromedp.ID("new"), next),
			chromedp.SendKeys(chromedp.ID("confirm"), confirm+"\r"),
			chromedp.WaitVisible(chromedp.CSS("#notice, #form-error")),
		)
	}
	change("wrong password", "new password 1", "new password 1")
	if msg := text(t, ctx, "#form-error"); msg != "Your current password is not right." {
		t.Errorf("wrong current password: %q", msg)
	}
	change(alice.Password, "new password 1", "new password 2")
	if msg := text(t, ctx, "#form-error"); !strings.Contains(msg, "differ") {
		t.Errorf("mismatch: %q", msg)
	}
	testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, alice.Password)) // nothing changed yet
	change(alice.Password, "new password 1", "new password 1")
	if msg := text(t, ctx, "#notice"); !strings.Contains(msg, "Every other session has ended") {
		t.Errorf("notice %q", msg)
	}
	screenshot(t, ctx, "password")
	testpds.WantStatus(t, e.pds.Procedure("com.atproto.server.refreshSession", nil, legacy), 400, "ExpiredToken")
	if _, err := sess.RefreshTokens(context.Background()); err == nil {
		t.Error("the app still refreshes after the password change")
	}
	testpds.WantStatus(t, testpds.Login(t, e.pds, alice.Handle, alice.Password), 401, "AuthenticationRequired")
	testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, "new password 1"))
	if err := chromedp.Do(other, chromedp.Navigate(e.pds.URL+"/account"), chromedp.WaitVisible(chromedp.ID("identifier"))); err != nil {
		t.Fatalf("the other browser is still signed in: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.pds.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("nav.account-nav"))); err != nil {
		t.Fatalf("this browser was signed out: %v", err)
	}

	// Reset, from the sign-in page of a fresh browser.
	fresh, cancelFresh := e.open()
	defer cancelFresh()
	testbrowser.Do(t, fresh,
		chromedp.Navigate(e.pds.URL+"/account"),
		chromedp.WaitVisible(chromedp.ID("identifier")),
		chromedp.Click(chromedp.CSS(`a[href="/account/reset"]`)),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), alice.Email+"\r"),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	screenshot(t, fresh, "reset")
	msg := e.mail.Next(t)
	if msg.To[0] != alice.Email || msg.Subject != "Password Reset Requested" || !strings.Contains(msg.Text, e.pds.URL+"/account") {
		t.Fatalf("mail to %v: %q", msg.To, msg.Subject)
	}
	// A wrong code changes nothing.
	clearMessages(t, fresh)
	testbrowser.Do(t, fresh,
		chromedp.SendKeys(chromedp.ID("code"), "AAAAA-AAAAA"),
		chromedp.SendKeys(chromedp.ID("new"), "new password 2"),
		chromedp.SendKeys(chromedp.ID("confirm"), "new password 2\r"),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	)
	testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, "new password 1"))
	clearMessages(t, fresh)
	testbrowser.Do(t, fresh,
		chromedp.SendKeys(chromedp.ID("code"), msg.Token(t)),
		chromedp.SendKeys(chromedp.ID("new"), "new password 2"),
		chromedp.SendKeys(chromedp.ID("confirm"), "new password 2\r"),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	testpds.WantStatus(t, testpds.Login(t, e.pds, alice.Handle, "new password 1"), 401, "AuthenticationRequired")
	testpds.MustOK(t, testpds.Login(t, e.pds, alice.Handle, "new password 2"))
	// An unknown address reads the same and sends nothing.
	testbrowser.Do(t, fresh, chromedp.Navigate(e.pds.URL+"/account/reset"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "nobody@example.com\r"), chromedp.WaitVisible(chromedp.ID("code")))
	e.mail.None(t)
}

// TestEmail: confirm the address with the mailed code, then change it with a code sent to the old address.
func TestEmail(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account/email"),
		chromedp.WaitVisible(chromedp.ID("email-status")),
	)
	if s := text(t, ctx, "#email-status"); s != "not confirmed" {
		t.Errorf("status %q", s)
	}
	testbrowser.Do(t, ctx,
		chromedp.Click(chromedp.CSS(`input[value="send-confirm"] ~ .actions button`)),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	msg := e.mail.Next(t)
	if msg.To[0] != alice.Email || msg.Subject != "Email Confirmation" {
		t.Fatalf("mail to %v: %q", msg.To, msg.Subject)
	}
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx, chromedp.SendKeys(chromedp.ID("code"), msg.Token(t)+"\r"), chromedp.WaitVisible(chromedp.ID("notice")))
	if s := text(t, ctx, "#email-status"); s != "confirmed" {
		t.Errorf("after confirming: %q", s)
	}
	if got := testpds.MustOK(t, e.pds.Query("com.atproto.server.getSession", nil, alice.AccessJwt)); got["emailConfirmed"] != true {
		t.Errorf("getSession: %v", got)
	}

	// Change: the code goes to the old (confirmed) address.
	testbrowser.Do(t, ctx,
		chromedp.Click(chromedp.CSS(`input[value="start-change"] ~ .actions button`)),
		chromedp.WaitVisible(chromedp.ID("change-code")),
	)
	screenshot(t, ctx, "email")
	msg = e.mail.Next(t)
	if msg.To[0] != alice.Email || msg.Subject != "Email Update Requested" {
		t.Fatalf("mail to %v: %q", msg.To, msg.Subject)
	}
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx,
		chromedp.SendKeys(chromedp.ID("new-email"), "alice2@example.com"),
		chromedp.SendKeys(chromedp.ID("change-code"), msg.Token(t)+"\r"),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	if a, s := text(t, ctx, "#email-address"), text(t, ctx, "#email-status"); a != "alice2@example.com" || s != "not confirmed" {
		t.Errorf("after change: %q %q", a, s)
	}
	got := testpds.MustOK(t, e.pds.Query("com.atproto.server.getSession", nil, alice.AccessJwt))
	if got["email"] != "alice2@example.com" || got["emailConfirmed"] != false {
		t.Errorf("getSession after change: %v", got)
	}
}
