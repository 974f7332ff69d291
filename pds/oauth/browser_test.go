package oauth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
)

// newBrowser starts headless chromium (internal/testbrowser).
func newBrowser(t *testing.T) func() (context.Context, context.CancelFunc) { return testbrowser.New(t) }

// TestBrowser: a real browser signs in and approves on the pages (the app then exchanges the code with indigo's
// client and uses, refreshes and revokes the session), denies in a second run, and sees the error on a wrong
// password. Everything is driven by the keyboard: typing and Enter / Tab, no clicks.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	open := newBrowser(t)

	t.Run("approve", func(t *testing.T) {
		a := e.newApp()
		info, authURL := a.Start(t, "")
		ctx, cancel := open()
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("identifier"))); err != nil {
			t.Fatal(err)
		}
		title := run(t, ctx, chromedp.Title())
		// The stylesheet is allowed by its CSP hash: the sign-in button got its colour.
		styled := run(t, ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector("button")).backgroundColor === "rgb(29, 100, 216)"`))
		// On a phone-sized window nothing overflows sideways; every visible field has its label, every button a name.
		fits := run(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		labelled := run(t, ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll("input:not([type=hidden])")].every(i => i.labels.length === 1 && i.labels[0].textContent.trim() !== "") &&
			[...document.querySelectorAll("button")].every(b => b.textContent.trim() !== "")`))
		focused := run(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		if !fits || !labelled || focused != "identifier" {
			t.Errorf("sign-in page: fits %v, labelled %v, focus on %q", fits, labelled, focused)
		}
		err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.ID("identifier"), aliceHandle),
			chromedp.SendKeys(chromedp.ID("password"), alicePassword+"\r"), // Enter submits the form
			chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		consent := run(t, ctx, chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(title, "Sign in") || !styled {
			t.Errorf("sign-in page: title %q, styled %v", title, styled)
		}
		for _, want := range []string{"@" + aliceHandle, "localhost", "development app", "Create, update and delete any of your records"} {
			if !strings.Contains(consent, want) {
				t.Errorf("consent page lacks %q:\n%s", want, consent)
			}
		}
		// The Allow button has focus (autofocus): Enter approves.
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		cb := e.callback.Wait(t)
		if cb.Get("code") == "" || cb.Get("state") != info.State || cb.Get("iss") != e.issuer {
			t.Fatalf("redirect: %v", cb)
		}
		sess, tok := a.Finish(t, info, cb.Get("code"))
		if tok.Subject != aliceDID {
			t.Fatalf("sub %q", tok.Subject)
		}
		if status, body := e.whoami(t, sess); status != 200 || body["did"] != aliceDID {
			t.Fatalf("resource: %d %v", status, body)
		}
		if _, err := sess.RefreshTokens(context.Background()); err != nil {
			t.Fatal(err)
		}
		if status, _ := e.whoami(t, sess); status != 200 {
			t.Fatal("resource after refresh")
		}
		if err := sess.RevokeSession(context.Background()); err != nil {
			t.Fatal(err)
		}
		if status, _ := e.whoami(t, sess); status == 200 {
			t.Fatal("revoked session still works")
		}

		// Second request in the same browser: the account chooser, then consent; Deny this time, by keyboard
		// (Tab from Allow to Deny, then Enter).
		info, authURL = a.Start(t, "")
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS("ul.accounts"))); err != nil {
			t.Fatal(err)
		}
		chooser := run(t, ctx, chromedp.Text(chromedp.CSS("main")))
		err = chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS("ul.accounts a")),
			chromedp.WaitVisible(chromedp.CSS(`button[value="deny"]`)),
			chromedp.KeyEvent("\t"),
			chromedp.KeyEvent("\r"),
		)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(chooser, "@"+aliceHandle) {
			t.Errorf("chooser: %s", chooser)
		}
		cb = e.callback.Wait(t)
		if cb.Get("error") != "access_denied" || cb.Get("state") != info.State || cb.Get("iss") != e.issuer || cb.Get("code") != "" {
			t.Fatalf("deny redirect: %v", cb)
		}
	})

	t.Run("deny", func(t *testing.T) {
		a := e.newApp()
		info, authURL := a.Start(t, aliceHandle)
		ctx, cancel := open()
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
			t.Fatal(err)
		}
		prefilled := run(t, ctx, chromedp.Value(chromedp.ID("identifier"))) // the login hint
		err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.ID("password"), alicePassword+"\r"),
			chromedp.WaitVisible(chromedp.CSS(`button[value="deny"]`)),
			chromedp.Click(chromedp.CSS(`button[value="deny"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		if prefilled != aliceHandle {
			t.Errorf("login hint not prefilled: %q", prefilled)
		}
		cb := e.callback.Wait(t)
		if cb.Get("error") != "access_denied" || cb.Get("state") != info.State || cb.Get("iss") != e.issuer {
			t.Fatalf("deny redirect: %v", cb)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		a := e.newApp()
		_, authURL := a.Start(t, "")
		ctx, cancel := open()
		defer cancel()
		err := chromedp.Do(ctx,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(chromedp.ID("identifier")),
			chromedp.SendKeys(chromedp.ID("identifier"), aliceHandle),
			chromedp.SendKeys(chromedp.ID("password"), "not the password\r"),
			chromedp.WaitVisible(chromedp.ID("form-error")),
		)
		if err != nil {
			t.Fatal(err)
		}
		msg := run(t, ctx, chromedp.Text(chromedp.ID("form-error")))
		role := run(t, ctx, chromedp.AttributeValue(chromedp.ID("form-error"), "role")).Value
		if msg != "Invalid identifier or password" || role != "alert" {
			t.Errorf("error shown: %q (role %q)", msg, role)
		}
		select {
		case v := <-e.callback.Got:
			t.Fatalf("the app was called after a wrong password: %v", v)
		default:
		}
	})
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	return testbrowser.Run(t, ctx, a)
}
