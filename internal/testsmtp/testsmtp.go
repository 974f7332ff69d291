// Package testsmtp runs a real SMTP server on loopback for tests (github.com/emersion/go-smtp): it receives
// what the PDS sends, so email flows are tested end to end, tokens read from the delivered message.
package testsmtp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure the server.
type Options struct {
	STARTTLS    bool   // offer STARTTLS with a fresh self-signed certificate for 127.0.0.1/localhost
	ImplicitTLS bool   // TLS from the first byte (smtps)
	Username    string // when set, AUTH PLAIN with Username/Password is required before MAIL
	Password    string
}

// Message is one delivered message.
type Message struct {
	From    string
	To      []string
	Subject string
	Text    string // the decoded text/plain part
	HTML    string // the decoded text/html part, if any
	Raw     []byte
	TLS     bool // the session was encrypted
	AuthAs  string
}

// Server is a running SMTP server.
type Server struct {
	Addr     string         // host:port
	Host     string         // 127.0.0.1
	Port     int            // port
	Config   *tls.Config    // a client TLS config that trusts the server's certificate (TLS modes)
	Roots    *x509.CertPool // the same, as a pool
	msgs     chan *Message
	mu       sync.Mutex
	failWith error
	opts     Options
}

// Start starts a server; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{msgs: make(chan *Message, 100), opts: opts}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = discardLogger{}
	var ln net.Listener
	var err error
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.STARTTLS || opts.ImplicitTLS {
		cert, pool := selfSigned(t)
		s.Roots = pool
		s.Config = &tls.Config{RootCAs: pool, ServerName: "localhost"}
		srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
		if opts.STARTTLS {
			srv.TLSConfig = srvTLS
		} else {
			ln = tls.NewListener(ln, srvTLS)
		}
	}
	s.Addr = ln.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// URL is the PDS_EMAIL_SMTP_URL for this server (credentials percent-encoded).
func (s *Server) URL() string {
	scheme := "smtp"
	if s.opts.ImplicitTLS {
		scheme = "smtps"
	}
	user := ""
	if s.opts.Username != "" {
		user = urlUserinfo(s.opts.Username, s.opts.Password) + "@"
	}
	return fmt.Sprintf("%s://%slocalhost:%d", scheme, user, s.Port)
}

func urlUserinfo(u, p string) string {
	esc := func(v string) string {
		var b strings.Builder
		for _, c := range []byte(v) {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	return esc(u) + ":" + esc(p)
}

// FailWith makes every following delivery fail with a permanent SMTP error (nil restores delivery).
func (s *Server) FailWith(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg == "" {
		s.failWith = nil
		return
	}
	s.failWith = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: msg}
}

// Next waits up to 10 s for the next delivered message.
func (s *Server) Next(t testing.TB) *Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("testsmtp: no message delivered within 10s")
		return nil
	}
}

// None checks that nothing was delivered (and nothing is queued) at this moment.
func (s *Server) None(t testing.TB) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("testsmtp: unexpected message to %v: %q", m.To, m.Subject)
	default:
	}
}

var tokenRE = regexp.MustCompile(`\b[A-Z2-7]{5}-[A-Z2-7]{5}\b`)

// Token is the XXXXX-XXXXX token in the message's text (fails the test if there is none).
func (m *Message) Token(t testing.TB) string {
	t.Helper()
	tok := tokenRE.FindString(m.Text)
	if tok == "" {
		t.Fatalf("testsmtp: no token in message %q: %q", m.Subject, m.Text)
	}
	return tok
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{srv: s, conn: c, tls: isTLS}, nil
}

type session struct {
	srv  *Server
	conn *smtp.Conn
	tls  bool
	from string
	to   []string
	auth string
}

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.srv.opts.Username || password != ss.srv.opts.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		ss.auth = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.Username != "" && ss.auth == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.srv.mu.Lock()
	fail := ss.srv.failWith
	ss.srv.mu.Unlock()
	if fail != nil {
		return fail
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	m := &Message{From: ss.from, To: ss.to, Raw: raw, TLS: isTLS || ss.tls, AuthAs: ss.auth}
	if err := decode(m); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "undecodable message: " + err.Error()}
	}
	ss.srv.msgs <- m
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// decode fills Subject, Text and HTML from the raw message (single part or multipart/alternative).
func decode(m *Message) error {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return err
	}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return err
	}
	return decodePart(m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func decodePart(m *Message, ctype, cte string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := decodePart(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(cte) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = newBase64Reader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	switch mt {
	case "text/plain":
		m.Text += string(b)
	case "text/html":
		m.HTML += string(b)
	}
	return nil
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
