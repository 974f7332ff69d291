package pds_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// TestOAuthDeactivatedAccount: a deactivated account (as a migration's new account is until the move is done)
// signs in to an app through the OAuth pages in chromium, with and without two-factor sign-in by email (the code
// read from the SMTP server), as the reference allows. The app gets and refreshes tokens; through them a write
// answers AccountDeactivated while getSession, checkAccountStatus and the migration-in methods (uploadBlob,
// listMissingBlobs, getRecommendedDidCredentials, importRepo) work; activateAccount (account:status?action=manage) reactivates the account,
// and the next write succeeds.
func TestOAuthDeactivatedAccount(t *testing.T) {
	mail := testsmtp.Start(t, testsmtp.Options{})
	p := testpds.Start(t, testpds.Options{Env: map[string]string{
		"PDS_EMAIL_SMTP_URL": mail.URL(), "PDS_EMAIL_FROM_ADDRESS": "PDS <noreply@pds.test>"}})
	open := testbrowser.New(t)
	for _, twoFactor := range []bool{false, true} {
		name := map[bool]string{false: "password", true: "email two-factor"}[twoFactor]
		t.Run(name, func(t *testing.T) {
			a := p.CreateAccount(map[bool]string{false: "deact", true: "deact2fa"}[twoFactor])
			testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", postRecord(a.DID, "app.bsky.feed.post", "before"), a.AccessJwt))
			if twoFactor {
				turnOnTwoFactor(t, p, mail, a)
			}
			testpds.MustOK(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, a.AccessJwt))

			// Sign-in and consent in chromium; the consent page says the account is deactivated.
			app := newOAuthApp(t, p, "atproto", "transition:generic", "account:status?action=manage", "account:repo?action=manage")
			authURL := app.authorize(a.DID) // a deactivated account's handle does not resolve (as in the reference)
			ctx, cancel := open()
			defer cancel()
			next := `button[value="approve"]`
			if twoFactor {
				next = "#code"
			}
			testbrowser.Do(t, ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("password")),
				chromedp.SetValue(chromedp.ID("identifier"), a.Handle),
				chromedp.SendKeys(chromedp.ID("password"), a.Password+"\r"), chromedp.WaitVisible(chromedp.CSS(next)))
			if twoFactor {
				code := mail.Next(t).Token(t)
				testbrowser.Do(t, ctx, chromedp.SendKeys(chromedp.ID("code"), code+"\r"),
					chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)))
			}
			if msg := testbrowser.Run(t, ctx, chromedp.Text(chromedp.ID("deactivated"))); !strings.Contains(msg, "deactivated") {
				t.Errorf("consent page: %q", msg)
			}
			testbrowser.Do(t, ctx, chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
			sess := app.finish()
			if sess.Data.AccountDID.String() != a.DID {
				t.Fatalf("session of %s", sess.Data.AccountDID)
			}
			call := func(method, nsid string, query url.Values, body any, headers map[string]string) *testpds.Response {
				return oauthCall(t, p, sess, method, nsid, query, body, headers)
			}

			// Writes are refused; the account's own status and the migration-in methods work.
			testpds.WantStatus(t, call("POST", "com.atproto.repo.createRecord", nil, postRecord(a.DID, "app.bsky.feed.post", "while deactivated"), nil),
				http.StatusBadRequest, "AccountDeactivated")
			if s := testpds.MustOK(t, call("GET", "com.atproto.server.getSession", nil, nil, nil)); s["active"] != false || s["status"] != "deactivated" {
				t.Errorf("getSession: %v", s)
			}
			if s := testpds.MustOK(t, call("GET", "com.atproto.server.checkAccountStatus", nil, nil, nil)); s["activated"] != false {
				t.Errorf("checkAccountStatus: %v", s)
			}
			blob := testpds.MustOK(t, call("POST", "com.atproto.repo.uploadBlob", nil, testpds.PNG(7, 100), map[string]string{"Content-Type": "image/png"}))
			if blob["blob"] == nil {
				t.Errorf("uploadBlob: %v", blob)
			}
			testpds.MustOK(t, call("GET", "com.atproto.repo.listMissingBlobs", nil, nil, nil))
			if c := testpds.MustOK(t, call("GET", "com.atproto.identity.getRecommendedDidCredentials", nil, nil, nil)); c["verificationMethods"] == nil {
				t.Errorf("getRecommendedDidCredentials: %v", c)
			}
			car := p.Query("com.atproto.sync.getRepo", url.Values{"did": {a.DID}}, a.AccessJwt) // the owner reads its own repo
			if car.Status != http.StatusOK {
				t.Fatalf("getRepo: %s", car)
			}
			testpds.WantStatus(t, call("POST", "com.atproto.repo.importRepo", nil, car.Body, map[string]string{"Content-Type": "application/vnd.ipld.car"}), 200, "")

			// The tokens refresh; activateAccount through the refreshed token; then writes work.
			if _, err := sess.RefreshTokens(context.Background()); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			testpds.WantStatus(t, call("POST", "com.atproto.server.activateAccount", nil, nil, nil), 200, "")
			if s := testpds.MustOK(t, call("GET", "com.atproto.server.checkAccountStatus", nil, nil, nil)); s["activated"] != true {
				t.Errorf("checkAccountStatus after activateAccount: %v", s)
			}
			testpds.MustOK(t, call("POST", "com.atproto.repo.createRecord", nil, postRecord(a.DID, "app.bsky.feed.post", "after"), nil))
			mail.None(t) // no code but the one the sign-in used
		})
	}
}

// turnOnTwoFactor confirms a's address and turns on two-factor sign-in by email (updateEmail's emailAuthFactor,
// with the mailed update token), using up the mails it causes.
func turnOnTwoFactor(t *testing.T, p *testpds.PDS, mail *testsmtp.Server, a *testpds.Account) {
	t.Helper()
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, a.AccessJwt))
	testpds.MustOK(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": a.Email, "token": mail.Next(t).Token(t)}, a.AccessJwt))
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailUpdate", nil, a.AccessJwt))
	testpds.MustOK(t, p.Procedure("com.atproto.server.updateEmail",
		map[string]any{"email": a.Email, "emailAuthFactor": true, "token": mail.Next(t).Token(t)}, a.AccessJwt))
}
