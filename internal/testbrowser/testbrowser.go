// Package testbrowser drives a real headless browser (Debian chromium, through chromedp) for the tests of the
// server's web pages: the OAuth provider's own tests and the full-server OAuth tests share it.
package testbrowser

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian installs chromium (.ci/run installs it).
const ChromiumPath = "/usr/bin/chromium"

// PageTimeout bounds everything one browser context does.
const PageTimeout = 2 * time.Minute // generous: the test machine is shared

// New starts headless chromium (a phone-sized window) for the test and returns a function that opens a fresh
// browser context in it: its own cookies, like a separate browser. The test fails if chromium is missing.
func New(t testing.TB) func() (context.Context, context.CancelFunc) {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("chromium is required for the page tests (apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(ChromiumPath), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(390, 844))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return func() (context.Context, context.CancelFunc) {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		ctx, cancelT := context.WithTimeout(ctx, PageTimeout)
		return ctx, func() { cancelT(); cancel() }
	}
}

// Run runs one action and returns its value, failing the test on error.
func Run[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Do runs the steps in the browser ctx, failing the test on error.
func Do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// SignInAndApprove completes an authorization request on the server's pages in the browser ctx: it opens
// authURL, picks the account on the chooser if this browser is already signed in (the chooser lists it by
// "@handle"), otherwise signs in with identifier and password, then approves on the consent page. The browser
// then follows the redirect to the app's callback.
func SignInAndApprove(t testing.TB, ctx context.Context, authURL, identifier, password string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`#identifier, ul.accounts, button[value="approve"]`))); err != nil {
		t.Fatalf("opening %s: %v", authURL, err)
	}
	if Run(t, ctx, chromedp.Evaluate[bool](`document.querySelector("ul.accounts") !== null`)) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`ul.accounts a`)),
			chromedp.WaitVisible(chromedp.CSS(`#password, button[value="approve"]`))); err != nil {
			t.Fatalf("account chooser: %v", err)
		}
	}
	if Run(t, ctx, chromedp.Evaluate[bool](`document.querySelector("#password") !== null`)) {
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.ID("identifier"), identifier),
			chromedp.SendKeys(chromedp.ID("password"), password+"\r"),
			chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`))); err != nil {
			t.Fatalf("sign-in: %v", err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="approve"]`))); err != nil {
		t.Fatalf("consent: %v", err)
	}
}
