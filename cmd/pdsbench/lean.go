package main

// A minimal HTTP/1.1 keep-alive client for the measured calls (getRecord, createRecord, listRecords, getRepo).
// On a 2-core machine every microsecond of the tool's CPU is taken from the server it measures: net/http's client
// cost ~46 µs per getRecord (url.Values, http.Request, header maps, a reader and a writer goroutine per
// connection). Here a request is appended into a reused buffer and written with one Write, and the answer is
// parsed from a reused bufio.Reader. Set-up calls (accounts, invites, seeding) stay on net/http (client.call).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	leanTimeout    = 60 * time.Second // longest request, as net/http's Client.Timeout in newClient
	leanIdleCheck  = time.Second      // default leanPool.idleCheck
	leanMaxBody    = 64 << 20         // largest body kept for decoding
	leanMaxErrBody = 1 << 20          // largest error body read (the connection is dropped past it)
	leanBufSize    = 16 << 10         // bufio.Reader size: also the longest status or header line
)

var errLeanProtocol = errors.New("malformed HTTP response")

// leanPool hands out connections: one per concurrent caller, so N client goroutines use at most N connections
// (as net/http's pool did), and a goroutine that calls back-to-back gets the connection it just returned.
type leanPool struct {
	hostport string      // dial address
	host     string      // Host header
	prefix   string      // request path up to the NSID: base path + "/xrpc/"
	tls      *tls.Config // https targets only
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	err      error // the base URL did not parse
	// A connection idle longer than this is checked for a close by the server before a request goes out (one
	// non-blocking read): cheaper than a read goroutine per connection, and it keeps POSTs off closed ones.
	idleCheck time.Duration

	mu   sync.Mutex
	idle []*leanConn
}

func newLeanPool(base string) *leanPool {
	p := &leanPool{dial: loopbackDialer(), idleCheck: leanIdleCheck}
	u, err := url.Parse(base)
	if err != nil {
		p.err = err
		return p
	}
	p.host, p.prefix = u.Host, strings.TrimRight(u.Path, "/")+"/xrpc/"
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		p.tls = &tls.Config{ServerName: u.Hostname()}
	default:
		p.err = fmt.Errorf("target %q: scheme must be http or https", base)
	}
	p.hostport = net.JoinHostPort(u.Hostname(), port)
	return p
}

func (p *leanPool) get() *leanConn {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		lc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return lc
	}
	p.mu.Unlock()
	return &leanConn{p: p}
}

func (p *leanPool) put(lc *leanConn) {
	p.mu.Lock()
	p.idle = append(p.idle, lc)
	p.mu.Unlock()
}

// closeIdle closes the connections not in use.
func (p *leanPool) closeIdle() {
	p.mu.Lock()
	for _, lc := range p.idle {
		lc.close()
	}
	p.mu.Unlock()
}

// leanConn is one caller's connection with its buffers; it dials again after the connection was closed.
type leanConn struct {
	p        *leanPool
	nc       net.Conn // nil: not connected
	raw      net.Conn // the TCP connection under nc (the same without TLS)
	br       *bufio.Reader
	body     bodyReader
	deadline time.Time // set on nc
	lastUsed time.Time

	nsid string // of the request being built, for errors
	get  bool   // the request is a GET: safe to send again
	req  []byte // the request being built
	post []byte // a POST body being built
	resp []byte // the answer's body, when kept for decoding
}

func (lc *leanConn) close() {
	if lc.nc != nil {
		lc.nc.Close()
		lc.nc, lc.raw = nil, nil
	}
}

// begin starts a request: "METHOD /prefix/NSID". Query parameters follow with query, then end.
func (lc *leanConn) begin(method, nsid string) {
	lc.nsid, lc.get = nsid, method == "GET"
	b := append(lc.req[:0], method...)
	b = append(b, ' ')
	b = append(b, lc.p.prefix...)
	lc.req = append(b, nsid...)
}

// query appends one parameter; sep is '?' for the first and '&' after.
func (lc *leanConn) query(sep byte, name, value string) {
	b := append(lc.req, sep)
	b = append(b, name...)
	b = append(b, '=')
	lc.req = appendQueryEscape(b, value)
}

// end finishes the head (a bearer token if set, a JSON body if body is non-nil) and appends the body.
func (lc *leanConn) end(token string, body []byte) {
	b := append(lc.req, " HTTP/1.1\r\nHost: "...)
	b = append(b, lc.p.host...)
	b = append(b, "\r\nUser-Agent: pdsbench\r\n"...)
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	if token != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, token...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	lc.req = append(b, body...)
}

// roundTrip sends the request built with begin/end and reads the whole answer: into lc.resp with keep, else
// copied to sink, else discarded. It returns the body's length. A non-2xx answer is an *xrpcError. A GET that
// failed on a reused connection before any byte of the answer arrived (the server closed it while idle) is sent
// once more on a new connection; a POST never is (it may have been written).
func (lc *leanConn) roundTrip(ctx context.Context, sink io.Writer, keep bool) (int64, error) {
	if lc.p.err != nil {
		return 0, lc.p.err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		now := time.Now()
		reused, err := lc.connect(ctx, now)
		if err == nil {
			err = lc.setDeadline(ctx, now)
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", lc.nsid, err)
		}
		n, answered, err := lc.exchange(sink, keep)
		if err == nil {
			lc.lastUsed = now // the start of the last request: near enough for the idle check
			return n, nil
		}
		var xe *xrpcError
		if errors.As(err, &xe) {
			return 0, err
		}
		lc.close()
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			// The connection's deadline is the context's: report the cut-off as the context does (the caller
			// tells a deadline from a server error by ctx.Err(), which is set once the context's timer fired).
			<-ctx.Done()
			return n, ctx.Err()
		}
		if attempt == 0 && reused && !answered && lc.get {
			continue
		}
		return n, fmt.Errorf("%s: %w", lc.nsid, err)
	}
}

// connect makes sure lc has a usable connection and says whether it served earlier requests.
func (lc *leanConn) connect(ctx context.Context, now time.Time) (reused bool, err error) {
	if lc.nc != nil {
		idle := now.Sub(lc.lastUsed) > lc.p.idleCheck
		if idle && !lc.deadline.IsZero() && !lc.deadline.After(now) {
			// The last scenario's deadline has passed: clear it, or the check below would fail on it.
			lc.deadline = time.Time{}
			if err := lc.nc.SetDeadline(lc.deadline); err != nil {
				lc.close()
			}
		}
		// Unread bytes after the last answer, or a close by the server while idle: start afresh.
		if lc.nc == nil || lc.br.Buffered() > 0 || (idle && peerClosed(lc.raw)) {
			lc.close()
		} else {
			return true, nil
		}
	}
	raw, err := lc.p.dial(ctx, "tcp", lc.p.hostport)
	if err != nil {
		return false, err
	}
	nc := raw
	if lc.p.tls != nil {
		tc := tls.Client(raw, lc.p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return false, err
		}
		nc = tc
	}
	lc.nc, lc.raw, lc.deadline = nc, raw, time.Time{}
	if lc.br == nil {
		lc.br = bufio.NewReaderSize(nc, leanBufSize)
	} else {
		lc.br.Reset(nc)
	}
	lc.body.br = lc.br
	return false, nil
}

// setDeadline bounds the request by the context's deadline and leanTimeout. Within a scenario the context's
// deadline is fixed, so the connection's is set once, not per request.
func (lc *leanConn) setDeadline(ctx context.Context, now time.Time) error {
	want := now.Add(leanTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(want) {
		want = dl
	} else if lc.deadline.After(now.Add(leanTimeout/2)) && !lc.deadline.After(want) {
		return nil // far enough ahead, and no earlier deadline asked for
	}
	if want.Equal(lc.deadline) {
		return nil
	}
	lc.deadline = want
	return lc.nc.SetDeadline(want)
}

// exchange writes the request and reads the answer. answered says whether any byte of the answer was read.
func (lc *leanConn) exchange(sink io.Writer, keep bool) (n int64, answered bool, err error) {
	if _, err := lc.nc.Write(lc.req); err != nil {
		return 0, false, err
	}
	status, closeAfter, answered, err := lc.readHead()
	if err != nil {
		return 0, answered, err
	}
	if status/100 != 2 {
		if err := lc.readBody(leanMaxErrBody); err != nil {
			return 0, true, err
		}
		if closeAfter {
			lc.close()
		}
		return 0, true, newXRPCError(status, lc.resp)
	}
	switch {
	case keep:
		err = lc.readBody(leanMaxBody)
		n = int64(len(lc.resp))
	case sink != nil:
		n, err = io.Copy(sink, &lc.body)
	default:
		n, err = lc.body.discard()
	}
	if err != nil {
		return n, true, err
	}
	if closeAfter {
		lc.close()
	}
	return n, true, nil
}

// readHead reads the status line and headers of the final answer (skipping 1xx ones) and sets up lc.body.
// closeAfter: the server will close the connection after this answer.
func (lc *leanConn) readHead() (status int, closeAfter, answered bool, err error) {
	br := lc.br
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, answered || len(line) > 0, err
		}
		answered = true
		// "HTTP/1.x SSS reason"
		if len(line) < 13 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
			return 0, false, true, fmt.Errorf("%w: status line %q", errLeanProtocol, trimCRLF(line))
		}
		status = 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return 0, false, true, fmt.Errorf("%w: status line %q", errLeanProtocol, trimCRLF(line))
			}
			status = status*10 + int(c-'0')
		}
		http10 := line[7] == '0'
		closeAfter = http10
		length, chunked, otherCoding := int64(-1), false, false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, false, true, err
			}
			line = trimCRLF(line)
			if len(line) == 0 {
				break
			}
			colon := -1
			for i, c := range line {
				if c == ':' {
					colon = i
					break
				}
			}
			if colon <= 0 {
				return 0, false, true, fmt.Errorf("%w: header line %q", errLeanProtocol, line)
			}
			name, value := line[:colon], trimSpace(line[colon+1:])
			switch {
			case equalFold(name, "content-length"):
				v, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || v < 0 || (length >= 0 && v != length) {
					return 0, false, true, fmt.Errorf("%w: Content-Length %q", errLeanProtocol, value)
				}
				length = v
			case equalFold(name, "transfer-encoding"):
				// The last coding decides: chunked, or any other coding means "read until the server closes".
				last := value
				if i := lastIndexByte(value, ','); i >= 0 {
					last = trimSpace(value[i+1:])
				}
				chunked = equalFold(last, "chunked")
				otherCoding = !chunked
			case equalFold(name, "connection"):
				for len(value) > 0 {
					tok := value
					if i := indexByte(value, ','); i >= 0 {
						tok, value = value[:i], value[i+1:]
					} else {
						value = nil
					}
					switch tok = trimSpace(tok); {
					case equalFold(tok, "close"):
						closeAfter = true
					case http10 && equalFold(tok, "keep-alive"):
						closeAfter = false
					}
				}
			}
		}
		if status >= 100 && status < 200 {
			if status == 101 {
				return 0, false, true, fmt.Errorf("%w: unexpected 101 Switching Protocols", errLeanProtocol)
			}
			continue // an interim answer: the final one follows
		}
		lc.body = bodyReader{br: br}
		switch {
		case status == 204 || status == 304:
		case chunked:
			lc.body.chunked = true
		case otherCoding || length < 0:
			lc.body.untilEOF, closeAfter = true, true
		default:
			lc.body.n = length
		}
		lc.body.done = !lc.body.chunked && !lc.body.untilEOF && lc.body.n == 0
		return status, closeAfter, true, nil
	}
}

// readBody reads the body into lc.resp; longer than limit is an error.
func (lc *leanConn) readBody(limit int) error {
	b := lc.resp[:0]
	if !lc.body.chunked && !lc.body.untilEOF {
		if lc.body.n > int64(limit) {
			return fmt.Errorf("answer body of %d bytes (limit %d)", lc.body.n, limit)
		}
		b = slices.Grow(b, int(lc.body.n))
	}
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(4096, len(b)))
		}
		m, err := lc.body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		lc.resp = b
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(b) > limit {
			return fmt.Errorf("answer body over %d bytes", limit)
		}
	}
}

func newXRPCError(status int, body []byte) *xrpcError {
	raw := body[:min(len(body), 4096)]
	e := &xrpcError{Status: status}
	if json.Unmarshal(raw, e) != nil || e.Name == "" {
		e.Message = strings.TrimSpace(string(raw))
	}
	return e
}

// bodyReader reads one answer's body: n bytes, chunked (RFC 9112 section 7.1), or until the server closes.
type bodyReader struct {
	br       *bufio.Reader
	chunked  bool
	untilEOF bool
	n        int64 // bytes left of the body, or of the current chunk
	done     bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.untilEOF {
		n, err := r.br.Read(p)
		if err == io.EOF {
			r.done = true
		}
		return n, err
	}
	if r.chunked && r.n == 0 {
		if err := r.nextChunk(); err != nil {
			return 0, err
		}
		if r.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.br.Read(p)
	r.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && r.n == 0 {
		if r.chunked {
			err = r.chunkEnd()
		} else {
			r.done = true
		}
	}
	return n, err
}

// discard reads the rest of the body and returns its length.
func (r *bodyReader) discard() (int64, error) {
	if !r.chunked && !r.untilEOF {
		want := r.n
		n, err := r.br.Discard(int(r.n))
		r.n -= int64(n)
		r.done = r.n == 0
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err == nil && n != int(want) {
			err = io.ErrUnexpectedEOF
		}
		return int64(n), err
	}
	return io.Copy(io.Discard, r)
}

// nextChunk reads a chunk-size line; a zero size is the last chunk, and the trailer section follows.
func (r *bodyReader) nextChunk() error {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return unexpectedEOF(err)
	}
	line = trimCRLF(line)
	if i := indexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions
	}
	line = trimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return fmt.Errorf("%w: chunk size %q", errLeanProtocol, line)
	}
	var size int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return fmt.Errorf("%w: chunk size %q", errLeanProtocol, line)
		}
		size = size<<4 | int64(c)
	}
	if size > 0 {
		r.n = size
		return nil
	}
	for { // trailer fields, up to the empty line
		line, err := r.br.ReadSlice('\n')
		if err != nil {
			return unexpectedEOF(err)
		}
		if len(trimCRLF(line)) == 0 {
			r.done = true
			return nil
		}
	}
}

// chunkEnd reads the CRLF after a chunk's data.
func (r *bodyReader) chunkEnd() error {
	cr, err := r.br.ReadByte()
	if err == nil && cr != '\r' {
		return fmt.Errorf("%w: no CRLF after a chunk", errLeanProtocol)
	}
	lf, err2 := r.br.ReadByte()
	if err == nil {
		err = err2
	}
	if err == nil && lf != '\n' {
		return fmt.Errorf("%w: no CRLF after a chunk", errLeanProtocol)
	}
	return unexpectedEOF(err)
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// equalFold compares b with the lower-case ASCII s, ignoring the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// appendQueryEscape appends s escaped as url.QueryEscape does.
func appendQueryEscape(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

// appendJSONString appends s as a JSON string, as encoding/json writes it (a string always marshals).
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
