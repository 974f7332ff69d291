package pds_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// The email flows share one server and mail server; each uses its own accounts.
func TestEmailFlows(t *testing.T) {
	t.Parallel()
	p, mail := testpds.StartWithMail(t, nil)
	t.Run("confirm and update", func(t *testing.T) { testEmailConfirmAndUpdate(t, p, mail) })
	t.Run("password reset", func(t *testing.T) { testPasswordReset(t, p, mail) })
	t.Run("purposes do not mix", func(t *testing.T) { testEmailTokenPurposesDoNotMix(t, p, mail) })
	t.Run("send failure is an error", func(t *testing.T) { testEmailSendFailureIsAnError(t, p, mail) })
}

func testEmailConfirmAndUpdate(t *testing.T, p *testpds.PDS, mail *testsmtp.Server) {
	alice := p.CreateAccount("alice")

	// Confirmation: the token arrives by SMTP at the account's address.
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))
	msg := mail.Next(t)
	if len(msg.To) != 1 || msg.To[0] != alice.Email || msg.From != "noreply@pds.test" || msg.Subject != "Email Confirmation" {
		t.Fatalf("confirmation mail: from %q to %v subject %q", msg.From, msg.To, msg.Subject)
	}
	token := msg.Token(t)
	if !strings.Contains(msg.HTML, token) {
		t.Fatalf("html part lacks the token: %q", msg.HTML)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": "other@example.com", "token": token}, alice.AccessJwt), 400, "InvalidEmail")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": "AAAAA-AAAAA"}, alice.AccessJwt), 400, "InvalidToken")
	if s := testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, alice.AccessJwt)); s["emailConfirmed"] != false {
		t.Fatalf("confirmed before confirmEmail: %v", s)
	}
	// Tokens are accepted in any case (users retype them).
	testpds.MustOK(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": strings.ToUpper(alice.Email), "token": strings.ToLower(token)}, alice.AccessJwt))
	if s := testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, alice.AccessJwt)); s["emailConfirmed"] != true {
		t.Fatalf("not confirmed after confirmEmail: %v", s)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": token}, alice.AccessJwt), 400, "InvalidToken")

	// A confirmed address needs a token (sent to the current address) to change.
	out := testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailUpdate", nil, alice.AccessJwt))
	if out["tokenRequired"] != true {
		t.Fatalf("requestEmailUpdate: %v", out)
	}
	msg = mail.Next(t)
	if msg.To[0] != alice.Email || msg.Subject != "Email Update Requested" {
		t.Fatalf("update mail to %v: %q", msg.To, msg.Subject)
	}
	upd := msg.Token(t)
	testpds.WantStatus(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "alice2@example.com"}, alice.AccessJwt), 400, "TokenRequired")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "alice2@example.com", "token": "BBBBB-BBBBB"}, alice.AccessJwt), 400, "InvalidToken")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "not-an-email", "token": upd}, alice.AccessJwt), 400, "InvalidRequest")
	bob := p.CreateAccount("bob")
	// Taken address: refused, and the token is not used up by the failure.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": bob.Email, "token": upd}, alice.AccessJwt), 400, "InvalidRequest")
	testpds.MustOK(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "Alice2@Example.com", "token": upd}, alice.AccessJwt))
	s := testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, alice.AccessJwt))
	if s["email"] != "alice2@example.com" || s["emailConfirmed"] != false {
		t.Fatalf("after updateEmail: %v", s)
	}

	// An unconfirmed address changes without a token, and no mail is sent.
	out = testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailUpdate", nil, bob.AccessJwt))
	if out["tokenRequired"] != false {
		t.Fatalf("unconfirmed requestEmailUpdate: %v", out)
	}
	testpds.MustOK(t, p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "bob2@example.com"}, bob.AccessJwt))
	mail.None(t)
	if a := testpds.Login(t, p, "bob2@example.com", bob.Password); a.Status != 200 {
		t.Fatalf("login with the new address: %s", a)
	}
}

func testPasswordReset(t *testing.T, p *testpds.PDS, mail *testsmtp.Server) {
	alice := p.CreateAccount("rita")
	second := testpds.MustOK(t, testpds.Login(t, p, alice.Handle, alice.Password))

	testpds.WantStatus(t, p.Procedure("com.atproto.server.requestPasswordReset", map[string]any{"email": "nobody@example.com"}, ""), 400, "InvalidRequest")
	mail.None(t)
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestPasswordReset", map[string]any{"email": "RITA@example.com"}, ""))
	msg := mail.Next(t)
	if msg.To[0] != alice.Email || msg.Subject != "Password Reset Requested" {
		t.Fatalf("reset mail to %v: %q", msg.To, msg.Subject)
	}
	token := msg.Token(t)

	testpds.WantStatus(t, p.Procedure("com.atproto.server.resetPassword", map[string]any{"token": "CCCCC-CCCCC", "password": "new-pass"}, ""), 400, "InvalidToken")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.resetPassword", map[string]any{"token": token, "password": strings.Repeat("x", 257)}, ""), 400, "InvalidRequest")
	testpds.MustOK(t, p.Procedure("com.atproto.server.resetPassword", map[string]any{"token": token, "password": "new-pass"}, ""))
	// Single use.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.resetPassword", map[string]any{"token": token, "password": "newer-pass"}, ""), 400, "InvalidToken")

	// Every session is revoked; the old password is gone; the new one works.
	for _, rt := range []string{alice.RefreshJwt, second["refreshJwt"].(string)} {
		testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, rt), 400, "ExpiredToken")
	}
	testpds.WantStatus(t, testpds.Login(t, p, alice.Handle, alice.Password), 401, "AuthenticationRequired")
	testpds.MustOK(t, testpds.Login(t, p, alice.Handle, "new-pass"))
}

func testEmailTokenPurposesDoNotMix(t *testing.T, p *testpds.PDS, mail *testsmtp.Server) {
	alice := p.CreateAccount("pat")
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))
	confirm := mail.Next(t).Token(t)
	// A confirmation token does not reset a password.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.resetPassword", map[string]any{"token": confirm, "password": "x-pass"}, ""), 400, "InvalidToken")
	// A second request replaces the first token.
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))
	confirm2 := mail.Next(t).Token(t)
	if confirm2 != confirm {
		testpds.WantStatus(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": confirm}, alice.AccessJwt), 400, "InvalidToken")
	}
	testpds.MustOK(t, p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": confirm2}, alice.AccessJwt))
}

// A mail server that refuses the message makes the request fail: the user must not wait for a token that
// never comes.
func testEmailSendFailureIsAnError(t *testing.T, p *testpds.PDS, mail *testsmtp.Server) {
	alice := p.CreateAccount("fay")
	mail.FailWith("mailbox unavailable")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt), http.StatusBadGateway, "UpstreamFailure")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.requestPasswordReset", map[string]any{"email": alice.Email}, ""), http.StatusBadGateway, "UpstreamFailure")
	mail.FailWith("")
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))
	mail.Next(t)
}
