// Package mailer sends the server's email (confirmation, password reset, tokens) over SMTP, or logs it when no
// SMTP server is configured.
package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// Mailer sends one message. A failed send is returned to the caller: a token the user never receives must not
// look like success.
type Mailer interface {
	Send(ctx context.Context, to, subject, textBody, htmlBody string) error
}

// ErrInvalidURL is returned by NewSMTP for a PDS_EMAIL_SMTP_URL it cannot use.
var ErrInvalidURL = errors.New("invalid SMTP URL")

// SMTPOption adjusts an SMTP mailer (tests use it to trust their own certificate).
type SMTPOption func(*smtpMailer)

// WithTLSConfig sets the TLS configuration for both smtps:// and STARTTLS (e.g. custom root CAs).
func WithTLSConfig(cfg *tls.Config) SMTPOption {
	return func(m *smtpMailer) { m.tlsConfig = cfg }
}

// WithTimeout bounds connecting and each SMTP command (default 30 s).
func WithTimeout(d time.Duration) SMTPOption {
	return func(m *smtpMailer) { m.timeout = d }
}

type smtpMailer struct {
	host      string
	port      int
	implicit  bool // smtps://: TLS from the first byte
	policy    mail.TLSPolicy
	user      string
	pass      string
	from      string
	tlsConfig *tls.Config
	timeout   time.Duration
}

// NewSMTP builds a mailer from a URL in the reference PDS's (nodemailer's) form:
//
//	smtps://user:pass@host[:465]   TLS from the start
//	smtp://user:pass@host[:587]    STARTTLS when the server offers it
//
// Credentials are percent-decoded. Query options as nodemailer: requireTLS=true refuses to send without
// STARTTLS, ignoreTLS=true never upgrades, tls.rejectUnauthorized=false skips certificate checks.
func NewSMTP(rawURL, from string, opts ...SMTPOption) (Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, redact(err))
	}
	m := &smtpMailer{host: u.Hostname(), from: from, policy: mail.TLSOpportunistic, timeout: 30 * time.Second}
	switch u.Scheme {
	case "smtps":
		m.implicit, m.port = true, 465
	case "smtp":
		m.port = 587
	default:
		return nil, fmt.Errorf("%w: scheme must be smtp or smtps", ErrInvalidURL)
	}
	if m.host == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if m.port, err = strconv.Atoi(p); err != nil || m.port < 1 || m.port > 65535 {
			return nil, fmt.Errorf("%w: bad port", ErrInvalidURL)
		}
	}
	if u.User != nil {
		m.user = u.User.Username() // url.Parse has already percent-decoded both
		m.pass, _ = u.User.Password()
	}
	q := u.Query()
	if q.Get("requireTLS") == "true" {
		m.policy = mail.TLSMandatory
	}
	if q.Get("ignoreTLS") == "true" {
		m.policy = mail.NoTLS
	}
	m.tlsConfig = &tls.Config{ServerName: m.host, MinVersion: tls.VersionTLS12}
	if q.Get("tls.rejectUnauthorized") == "false" {
		m.tlsConfig.InsecureSkipVerify = true
	}
	for _, o := range opts {
		o(m)
	}
	if from == "" {
		return nil, errors.New("PDS_EMAIL_FROM_ADDRESS is required with PDS_EMAIL_SMTP_URL")
	}
	if err := mail.NewMsg().From(from); err != nil {
		return nil, fmt.Errorf("PDS_EMAIL_FROM_ADDRESS: %w", err)
	}
	return m, nil
}

// redact keeps credentials out of URL parse errors (url.Error quotes the whole URL).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (m *smtpMailer) Send(ctx context.Context, to, subject, textBody, htmlBody string) error {
	msg := mail.NewMsg()
	if err := msg.From(m.from); err != nil {
		return fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(to); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(subject)
	msg.SetBodyString(mail.TypeTextPlain, textBody)
	if htmlBody != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, htmlBody)
	}
	// One client per message: go-mail clients hold a connection's state, and the server sends little mail.
	c, err := mail.NewClient(m.host, m.clientOptions()...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("sending mail via %s:%d: %w", m.host, m.port, err)
	}
	return nil
}

func (m *smtpMailer) clientOptions() []mail.Option {
	clientOpts := []mail.Option{
		mail.WithPort(m.port),
		mail.WithTimeout(m.timeout),
		mail.WithTLSConfig(m.tlsConfig),
	}
	if m.implicit {
		clientOpts = append(clientOpts, mail.WithSSL())
	} else {
		clientOpts = append(clientOpts, mail.WithTLSPolicy(m.policy))
	}
	if m.user != "" {
		clientOpts = append(clientOpts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(m.user), mail.WithPassword(m.pass))
	}
	return clientOpts
}

// Verify connects to the SMTP server and logs in (TLS as configured) without sending anything: `pds doctor`.
func (m *smtpMailer) Verify(ctx context.Context) error {
	c, err := mail.NewClient(m.host, m.clientOptions()...)
	if err != nil {
		return err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return fmt.Errorf("%s:%d: %w", m.host, m.port, err)
	}
	return c.Close()
}

// Verifier is a mailer that can check its server (the SMTP mailer).
type Verifier interface {
	Verify(ctx context.Context) error
}

// NewLogMailer returns a mailer that only logs each message (when no SMTP server is configured), so a local
// operator can still read the tokens.
func NewLogMailer(log *slog.Logger) Mailer { return &logMailer{log: log} }

type logMailer struct{ log *slog.Logger }

func (l *logMailer) Send(ctx context.Context, to, subject, textBody, htmlBody string) error {
	l.log.Info("email not sent (no PDS_EMAIL_SMTP_URL configured)", "to", to, "subject", subject,
		"body", strings.TrimSpace(textBody))
	return nil
}
