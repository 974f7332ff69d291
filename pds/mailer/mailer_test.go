package mailer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testsmtp"
	"github.com/pdsgo/pds/pds/mailer"
)

func send(t *testing.T, m mailer.Mailer) error {
	t.Helper()
	return m.Send(context.Background(), "alice@example.com", "Email Confirmation", "Your code: ABCDE-FGH23", "<p>Your code: <b>ABCDE-FGH23</b></p>")
}

func TestPlainSMTP(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	m, err := mailer.NewSMTP(srv.URL(), "PDS <noreply@pds.example>")
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, m); err != nil {
		t.Fatal(err)
	}
	got := srv.Next(t)
	if got.From != "noreply@pds.example" || len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Fatalf("envelope: from %q to %v", got.From, got.To)
	}
	if got.Subject != "Email Confirmation" || got.Token(t) != "ABCDE-FGH23" || !strings.Contains(got.HTML, "<b>ABCDE-FGH23</b>") {
		t.Fatalf("message: %q text %q html %q", got.Subject, got.Text, got.HTML)
	}
	if got.TLS {
		t.Fatal("plain server reported TLS")
	}
}

// STARTTLS with AUTH PLAIN, and credentials that need percent-encoding in the URL.
func TestSTARTTLSWithAuth(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{STARTTLS: true, Username: "pds@mail.example", Password: "p@ss:w/rd%20 x"})
	url := srv.URL()
	if !strings.Contains(url, "pds%40mail.example:p%40ss%3Aw%2Frd%2520%20x@") {
		t.Fatalf("credentials not percent-encoded in %s", url)
	}
	m, err := mailer.NewSMTP(url+"?requireTLS=true", "noreply@pds.example", mailer.WithTLSConfig(srv.Config))
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, m); err != nil {
		t.Fatal(err)
	}
	got := srv.Next(t)
	if !got.TLS || got.AuthAs != "pds@mail.example" {
		t.Fatalf("tls=%v auth=%q", got.TLS, got.AuthAs)
	}

	// Wrong password: the send fails, and says so.
	bad, err := mailer.NewSMTP(strings.Replace(url, "p%40ss", "nope", 1), "noreply@pds.example", mailer.WithTLSConfig(srv.Config))
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, bad); err == nil {
		t.Fatal("send with a wrong password succeeded")
	}
	srv.None(t)

	// An untrusted certificate is refused (no silent downgrade).
	untrusted, err := mailer.NewSMTP(url, "noreply@pds.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, untrusted); err == nil {
		t.Fatal("send accepted an untrusted certificate")
	}
	srv.None(t)
}

func TestImplicitTLS(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{ImplicitTLS: true})
	if !strings.HasPrefix(srv.URL(), "smtps://") {
		t.Fatal(srv.URL())
	}
	m, err := mailer.NewSMTP(srv.URL(), "noreply@pds.example", mailer.WithTLSConfig(srv.Config))
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, m); err != nil {
		t.Fatal(err)
	}
	if got := srv.Next(t); !got.TLS {
		t.Fatal("smtps message not over TLS")
	}
}

func TestRequireTLSRefusesPlainServer(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	m, err := mailer.NewSMTP(srv.URL()+"?requireTLS=true", "noreply@pds.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, m); err == nil {
		t.Fatal("requireTLS sent over a plain connection")
	}
	srv.None(t)
}

func TestRejectedDeliveryIsAnError(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	srv.FailWith("mailbox unavailable")
	m, err := mailer.NewSMTP(srv.URL(), "noreply@pds.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, m); err == nil || !strings.Contains(err.Error(), "mailbox unavailable") {
		t.Fatalf("want the server's refusal, got %v", err)
	}
}

func TestNewSMTPRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"http://host", "smtp://", "smtp://host:99999", "smtp://user:pa ss@host:bad"} {
		if _, err := mailer.NewSMTP(u, "noreply@pds.example"); err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), "pa ss") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := mailer.NewSMTP("smtp://host", ""); err == nil {
		t.Error("missing from address accepted")
	}
	if _, err := mailer.NewSMTP("smtp://host", "not an address"); err == nil {
		t.Error("bad from address accepted")
	}
	if _, err := mailer.NewSMTP("ftp://host", "a@b.c"); !errors.Is(err, mailer.ErrInvalidURL) {
		t.Errorf("want ErrInvalidURL, got %v", err)
	}
}

func TestLogMailer(t *testing.T) {
	var buf bytes.Buffer
	m := mailer.NewLogMailer(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := send(t, m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "ABCDE-FGH23") || !strings.Contains(buf.String(), "alice@example.com") {
		t.Fatalf("log: %s", buf.String())
	}
}
