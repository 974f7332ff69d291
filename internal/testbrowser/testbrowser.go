// Package testbrowser drives the server's web pages in a real headless browser (Debian chromium through
// chromedp) for tests: a phone-sized window, a fresh browser context (its own cookies) per call.
package testbrowser

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// New starts headless chromium and returns a function that opens a fresh browser context in it (its own
// cookies, like a separate browser); the browser stops when the test ends.
func New(t testing.TB) func() (context.Context, context.CancelFunc) {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("chromium is required for the page tests (apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(ChromiumPath), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(390, 844)) // a phone-sized window
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return func() (context.Context, context.CancelFunc) {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute) // generous: the machine is shared
		return ctx, func() { cancelT(); cancel() }
	}
}

// Run runs one action that returns a value, failing the test on error.
func Run[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
