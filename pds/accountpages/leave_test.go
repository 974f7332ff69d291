package accountpages_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestLeaving: download the repository (the same CAR as sync.getRepo) and the blob list, deactivate and
// reactivate (signing in while deactivated), delete with the mailed code.
func TestLeaving(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	blob := testpds.UploadBlobOK(t, e.pds, alice.AccessJwt, "image/png", testpds.PNG(1, 2000))
	testpds.WantStatus(t, testpds.CreateRecord(t, e.pds, alice, "app.bsky.feed.post", testpds.ImagePost("hello", blob)), 200, "")
	status := func() map[string]any {
		return e.pds.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {alice.DID}}, "").JSON()
	}

	// Downloads, by a browser signed in as alice; nothing for one that is not.
	f := newFormClient(t)
	if resp := f.get(e.pds.URL + "/account/export/repo.car"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous export: %d", resp.StatusCode)
	}
	f.signIn(e.pds.URL, alice.Handle, alice.Password)
	resp := f.get(e.pds.URL + "/account/export/repo.car")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.ipld.car" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	if want := testpds.GetRepoCAR(t, e.pds, alice.DID, alice.AccessJwt); !bytes.Equal([]byte(f.last), want) {
		t.Errorf("the exported CAR (%d bytes) is not sync.getRepo's (%d bytes)", len(f.last), len(want))
	}
	f.get(e.pds.URL + "/account/export/blobs.txt")
	if strings.TrimSpace(f.last) != blob.CID() {
		t.Errorf("blob list %q, want %s", f.last, blob.CID())
	}

	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account/leave"),
		chromedp.WaitVisible(chromedp.ID("deactivate-button")),
	)
	page := text(t, ctx, "main")
	for _, want := range []string{"cannot be undone", "Download your repository", "Your handle becomes free"} {
		if !strings.Contains(page, want) {
			t.Errorf("leave page lacks %q", want)
		}
	}
	screenshot(t, ctx, "leave")
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.ID("deactivate-button")), chromedp.WaitVisible(chromedp.ID("notice")))
	if st := status(); st["active"] != false || st["status"] != "deactivated" {
		t.Errorf("after deactivating: %v", st)
	}
	// Deactivation signed the browser out; sign in again while deactivated, and reactivate.
	e.signIn(ctx, alice)
	testbrowser.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("deactivated")))
	testbrowser.Do(t, ctx, chromedp.Click(chromedp.ID("reactivate")), chromedp.WaitVisible(chromedp.ID("notice")))
	if st := status(); st["active"] != true {
		t.Errorf("after reactivating: %v", st)
	}

	// Delete: the mailed code and the password.
	testbrowser.Do(t, ctx,
		chromedp.Navigate(e.pds.URL+"/account/leave"),
		chromedp.WaitVisible(chromedp.ID("request-delete")),
		chromedp.Click(chromedp.ID("request-delete")),
		chromedp.WaitVisible(chromedp.ID("delete-code")),
	)
	msg := e.mail.Next(t)
	if msg.Subject != "Account Deletion Requested" {
		t.Fatalf("mail %q", msg.Subject)
	}
	code := msg.Token(t)
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx,
		chromedp.SendKeys(chromedp.ID("delete-code"), code),
		chromedp.SendKeys(chromedp.ID("delete-password"), "wrong password\r"),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	)
	if st := status(); st["active"] != true {
		t.Fatalf("a wrong password deleted the account: %v", st)
	}
	clearMessages(t, ctx)
	testbrowser.Do(t, ctx,
		chromedp.SendKeys(chromedp.ID("delete-code"), code),
		chromedp.SendKeys(chromedp.ID("delete-password"), alice.Password+"\r"),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	testpds.WantStatus(t, e.pds.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {alice.DID}}, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, testpds.Login(t, e.pds, alice.Handle, alice.Password), 401, "AuthenticationRequired")
	testbrowser.Do(t, ctx, chromedp.Navigate(e.pds.URL+"/account"), chromedp.WaitVisible(chromedp.ID("identifier")))
}
