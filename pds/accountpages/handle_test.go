package accountpages_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestHandle: a new handle on the server's domain, then a custom domain: the DNS instructions are shown, the
// live check fails until the loopback DNS server answers, then the change is made.
func TestHandle(t *testing.T) {
	e, alice, ctx := newSignedIn(t)

	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account/handle"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "alice2\r"),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	if h := text(t, ctx, "#current-handle"); h != "@alice2.test" {
		t.Errorf("handle shown %q", h)
	}
	r := testpds.MustOK(t, e.pds.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"alice2.test"}}, ""))
	if r["did"] != alice.DID {
		t.Errorf("resolveHandle: %v", r)
	}

	const domain = "alice.example.com"
	testbrowser.Do(t, ctx,
		chromedp.SendKeys(chromedp.ID("handle"), domain+"\r"),
		chromedp.WaitVisible(chromedp.ID("dns-value")),
	)
	if host, val := text(t, ctx, "#dns-host"), text(t, ctx, "#dns-value"); host != "_atproto."+domain || val != "did="+alice.DID {
		t.Errorf("instructions: %q %q", host, val)
	}
	screenshot(t, ctx, "handle")
	// Not there yet: the check fails and nothing changes.
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`input[value="check"] ~ .actions button`)), chromedp.WaitVisible(chromedp.ID("form-error")))
	if msg := text(t, ctx, "#form-error"); !strings.Contains(msg, "names your account yet") {
		t.Errorf("check before the record: %q", msg)
	}
	// Another account's DID in the record is not enough either.
	e.dns.setTXT("_atproto."+domain+".", "did=did:plc:someoneelse2222222222222")
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`input[value="check"] ~ .actions button`)), chromedp.WaitVisible(chromedp.ID("form-error")))
	e.dns.setTXT("_atproto."+domain+".", "did="+alice.DID)
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx,
		chromedp.Click(chromedp.CSS(`input[value="check"] ~ .actions button`)),
		chromedp.WaitVisible(chromedp.ID("checked")),
	)
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx,
		chromedp.Click(chromedp.CSS(`input[value="change"] ~ .actions button`)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	if h := text(t, ctx, "#current-handle"); h != "@"+domain {
		t.Errorf("handle shown %q", h)
	}
	got := testpds.MustOK(t, e.pds.Query("com.atproto.server.getSession", nil, alice.AccessJwt))
	if got["handle"] != domain {
		t.Errorf("getSession handle %v", got["handle"])
	}
}
