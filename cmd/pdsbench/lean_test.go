package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
)

// rawServer is a loopback HTTP server whose answers are written byte for byte, for the protocol's edge cases.
type rawServer struct {
	url   string
	conns atomic.Int32 // accepted
	reqs  atomic.Int32 // requests read
}

// startRaw serves answer(n, req) for the n-th request (from 0) on each connection; a nil answer closes the
// connection without answering; an answer with "Connection: close" or of HTTP/1.0 closes it after.
func startRaw(t *testing.T, answer func(n int, r *http.Request, body []byte) []byte) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + ln.Addr().String()}
	var mu sync.Mutex
	var open []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(r.Body)
					s.reqs.Add(1)
					a := answer(n, r, body)
					if a == nil {
						return
					}
					if _, err := c.Write(a); err != nil || bytes.Contains(a, []byte("Connection: close")) || bytes.HasPrefix(a, []byte("HTTP/1.0")) {
						return
					}
				}
			}()
		}
	}()
	return s
}

// chunked encodes body in chunks of the given sizes (the rest in one), with an extension and a trailer.
func chunked(body []byte, sizes ...int) string {
	var sb strings.Builder
	for _, n := range sizes {
		n = min(n, len(body))
		fmt.Fprintf(&sb, "%X;ext=1\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	if len(body) > 0 {
		fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(body), body)
	}
	sb.WriteString("0\r\nX-Trailer: yes\r\n\r\n")
	return sb.String()
}

func answer(status, headers, body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\n%s\r\n%s", status, headers, body)
}

// sized is an answer with a Content-Length.
func sized(status, body string) []byte {
	return answer(status, fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n", len(body)), body)
}

func jsonAnswer(body string) []byte { return sized("200 OK", body) }

const testDID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"

func TestLeanKeepAliveAndRequests(t *testing.T) {
	var conns atomic.Int32
	var mu sync.Mutex
	var bodies [][]byte
	var fails []string
	var host atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(f string, a ...any) { mu.Lock(); fails = append(fails, fmt.Sprintf(f, a...)); mu.Unlock() }
		if r.Host != host.Load() || r.UserAgent() != "pdsbench" {
			fail("host %q, user agent %q", r.Host, r.UserAgent())
		}
		switch r.URL.Path {
		case "/xrpc/com.atproto.repo.getRecord":
			want := url.Values{"repo": {testDID}, "collection": {benchCollection}, "rkey": {"3l a+b/c"}}.Encode()
			if r.Method != http.MethodGet || r.URL.RawQuery != want || r.Header.Get("Authorization") != "" {
				fail("getRecord %s ?%s", r.Method, r.URL.RawQuery)
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"uri":"at://%s/app.bsky.feed.post/x","value":{}}`, testDID)
		case "/xrpc/com.atproto.repo.createRecord":
			if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok.en" ||
				r.Header.Get("Content-Type") != "application/json" || r.ContentLength <= 0 {
				fail("createRecord %s %v", r.Method, r.Header)
			}
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
			fmt.Fprintf(w, `{"uri":"at://%s/app.bsky.feed.post/r%d","cid":"bafyc","commit":{"cid":"x","rev":"y"}}`, testDID, len(bodies))
		default:
			fail("path %s", r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host.Store(strings.TrimPrefix(srv.URL, "http://"))

	c := newClient(srv.URL, 4)
	ctx := context.Background()
	a := &account{DID: testDID, AccessJwt: "tok.en"}
	texts := []string{"bench post 1", `he said "hi" <b>&amp;</b>` + "\n\t\x01 é \u2028 \xff end"}
	for i := range 20 {
		if err := c.getRecord(ctx, testDID, "3l a+b/c"); err != nil {
			t.Fatal(err)
		}
		before := time.Now().UTC().Truncate(time.Millisecond)
		out, err := c.createRecord(ctx, a, texts[i%2])
		if err != nil || out.URI != fmt.Sprintf("at://%s/app.bsky.feed.post/r%d", testDID, i+1) || out.CID != "bafyc" {
			t.Fatalf("createRecord: %+v %v", out, err)
		}
		// The body is what json.Marshal wrote for the same request (createdAt aside, which must be fresh).
		var got struct {
			Record struct {
				CreatedAt string `json:"createdAt"`
			} `json:"record"`
		}
		if err := json.Unmarshal(bodies[i], &got); err != nil {
			t.Fatalf("body %s: %v", bodies[i], err)
		}
		at, err := time.Parse(createdAtLayout, got.Record.CreatedAt)
		if err != nil || at.Before(before) || at.After(time.Now()) {
			t.Fatalf("createdAt %q not fresh (%v)", got.Record.CreatedAt, err)
		}
		rec := post(texts[i%2])
		rec["createdAt"] = got.Record.CreatedAt
		want, _ := json.Marshal(map[string]any{"repo": a.DID, "collection": benchCollection, "record": rec})
		if !bytes.Equal(bodies[i], want) {
			t.Fatalf("body\n%s\nwant\n%s", bodies[i], want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("40 calls one after another used %d connections", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := c.getRecord(ctx, testDID, "3l a+b/c"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := conns.Load(); n > 4 {
		t.Fatalf("4 concurrent clients used %d connections", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range fails {
		t.Error(f)
	}
}

func TestLeanChunkedBodies(t *testing.T) {
	page := `{"cursor":"3lnext","records":[{"uri":"a","value":{"text":"x"}},{"uri":"b","value":{}},{"uri":"c"}]}`
	repo := make([]byte, 100_000)
	for i := range repo {
		repo[i] = byte(i * 7)
	}
	s := startRaw(t, func(n int, r *http.Request, _ []byte) []byte {
		te := "Transfer-Encoding: chunked\r\n"
		switch r.URL.Path {
		case "/xrpc/com.atproto.repo.listRecords":
			return answer("200 OK", "Content-Type: application/json\r\n"+te, chunked([]byte(page), 1, 10, 0x1f))
		case "/xrpc/com.atproto.sync.getRepo":
			return answer("200 OK", "Content-Type: application/vnd.ipld.car\r\nTransfer-Encoding: gzip, chunked\r\n",
				chunked(repo, 5, 16384, 40000))
		case "/xrpc/com.atproto.repo.getRecord":
			if r.URL.Query().Get("rkey") == "bad" {
				return answer("200 OK", te, "zz\r\n{}\r\n0\r\n\r\n")
			}
			return answer("200 OK", te, chunked([]byte(`{"value":{}}`), 3))
		}
		return answer("404 Not Found", "Content-Length: 0\r\n", "")
	})
	c := newClient(s.url, 1)
	ctx := context.Background()
	for range 3 {
		cursor, n, err := c.listRecords(ctx, testDID, 3, "")
		if err != nil || cursor != "3lnext" || n != 3 {
			t.Fatalf("listRecords: %q %d %v", cursor, n, err)
		}
		var sink bytes.Buffer
		if n, err := c.getRepo(ctx, testDID, &sink); err != nil || n != int64(len(repo)) || !bytes.Equal(sink.Bytes(), repo) {
			t.Fatalf("getRepo: %d bytes (want %d) %v", n, len(repo), err)
		}
		if err := c.getRecord(ctx, testDID, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("9 chunked answers used %d connections: a body was not read to its end", n)
	}
	if err := c.getRecord(ctx, testDID, "bad"); !errors.Is(err, errLeanProtocol) {
		t.Fatalf("bad chunk size: %v", err)
	}
	if err := c.getRecord(ctx, testDID, "ok"); err != nil || s.conns.Load() != 2 {
		t.Fatalf("after a bad answer: %v, %d connections", err, s.conns.Load())
	}

	// Go's own chunked writer, with flushes in the middle of a long page.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"records":[`)
		for i := range 500 {
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			fmt.Fprintf(w, `{"uri":"at://x/y/%d","value":{"text":"%s"}}`, i, strings.Repeat("z", i))
			if i%100 == 0 {
				w.(http.Flusher).Flush()
			}
		}
		fmt.Fprint(w, `],"cursor":"end"}`)
	}))
	defer srv.Close()
	c = newClient(srv.URL, 1)
	if cursor, n, err := c.listRecords(ctx, testDID, 500, "x"); err != nil || n != 500 || cursor != "end" {
		t.Fatalf("listRecords from net/http's chunked writer: %q %d %v", cursor, n, err)
	}
}

func TestLeanConnectionClose(t *testing.T) {
	s := startRaw(t, func(n int, r *http.Request, _ []byte) []byte {
		if r.URL.Query().Get("rkey") == "http10" { // HTTP/1.0 without a length: the body ends when the server closes
			return []byte("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"value\":{}}")
		}
		return answer("200 OK", "Connection: close\r\nContent-Length: 12\r\n", `{"value":{}}`)
	})
	c := newClient(s.url, 1)
	for i := range 5 {
		if err := c.getRecord(context.Background(), testDID, "r"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := s.conns.Load(); n != 5 {
		t.Fatalf("5 answers with Connection: close, %d connections", n)
	}
	for range 2 {
		if err := c.getRecord(context.Background(), testDID, "http10"); err != nil {
			t.Fatal(err)
		}
	}
	if n, r := s.conns.Load(), s.reqs.Load(); n != 7 || r != 7 {
		t.Fatalf("%d connections for %d requests", n, r)
	}
}

func TestLeanErrorAnswers(t *testing.T) {
	s := startRaw(t, func(n int, r *http.Request, _ []byte) []byte {
		switch r.URL.Query().Get("rkey") {
		case "missing":
			return sized("400 Bad Request", `{"error":"RecordNotFound","message":"no such record"}`)
		case "gateway":
			return answer("502 Bad Gateway", "Transfer-Encoding: chunked\r\n", chunked([]byte("upstream is down\n"), 4))
		}
		if r.Method == http.MethodPost {
			return sized("401 Unauthorized", `{"error":"ExpiredToken","message":"Token has`) // cut short
		}
		return jsonAnswer(`{"value":{}}`)
	})
	c := newClient(s.url, 1)
	ctx := context.Background()
	var xe *xrpcError
	err := c.getRecord(ctx, testDID, "missing")
	if !errors.As(err, &xe) || xe.Status != 400 || xe.Name != "RecordNotFound" || xe.Message != "no such record" {
		t.Fatalf("JSON error answer: %#v", err)
	}
	err = c.getRecord(ctx, testDID, "gateway")
	if !errors.As(err, &xe) || xe.Status != 502 || xe.Name != "" || xe.Message != "upstream is down" {
		t.Fatalf("text error answer: %#v", err)
	}
	_, err = c.createRecord(ctx, &account{DID: testDID, AccessJwt: "t"}, "x")
	if !errors.As(err, &xe) || xe.Status != 401 || xe.Name != "" || !strings.HasPrefix(xe.Message, `{"error":"ExpiredToken"`) {
		t.Fatalf("cut JSON error answer: %#v", err)
	}
	if err := c.getRecord(ctx, testDID, "ok"); err != nil {
		t.Fatal(err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("error answers cost %d connections: their bodies were not read to the end", n)
	}
}

func TestLeanServerClosesIdleConnection(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"uri":"at://x/app.bsky.feed.post/y","cid":"c"}`)
		}))
		srv.Config.IdleTimeout = 50 * time.Millisecond
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		defer srv.Close()
		c := newClient(srv.URL, 1)
		c.lean.idleCheck = 10 * time.Millisecond
		a := &account{DID: testDID, AccessJwt: "t"}
		for i := range 3 {
			if err := c.getRecord(context.Background(), testDID, "r"); err != nil {
				t.Fatalf("GET %d: %v", i, err)
			}
			time.Sleep(150 * time.Millisecond)
			// A POST is never sent twice: it must find out before writing that the server closed the connection.
			if _, err := c.createRecord(context.Background(), a, "x"); err != nil {
				t.Fatalf("POST %d after the server closed the idle connection: %v", i, err)
			}
			time.Sleep(150 * time.Millisecond)
		}
		if n := conns.Load(); n != 6 {
			t.Fatalf("%d connections for 6 calls each after an idle close", n)
		}
	})

	// The server reads the second request on a connection and closes it without answering: the race in which a
	// server closes an idle connection just as a request goes out.
	hangUpSecond := func(n int, r *http.Request, _ []byte) []byte {
		if n == 1 {
			return nil
		}
		return jsonAnswer(`{"uri":"at://x/app.bsky.feed.post/y","cid":"c"}`)
	}
	t.Run("GET sent again", func(t *testing.T) {
		s := startRaw(t, hangUpSecond)
		c := newClient(s.url, 1)
		for i := range 2 {
			if err := c.getRecord(context.Background(), testDID, "r"); err != nil {
				t.Fatalf("GET %d: %v", i, err)
			}
		}
		if c, r := s.conns.Load(), s.reqs.Load(); c != 2 || r != 3 {
			t.Fatalf("%d connections, %d requests; want 2, 3", c, r)
		}
	})
	t.Run("POST not sent twice", func(t *testing.T) {
		s := startRaw(t, hangUpSecond)
		c := newClient(s.url, 1)
		a := &account{DID: testDID, AccessJwt: "t"}
		if _, err := c.createRecord(context.Background(), a, "one"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.createRecord(context.Background(), a, "two"); err == nil {
			t.Fatal("a POST the server hung up on succeeded")
		}
		if r := s.reqs.Load(); r != 2 {
			t.Fatalf("the server read %d requests for 2 POSTs", r)
		}
		if _, err := c.createRecord(context.Background(), a, "three"); err != nil || s.conns.Load() != 2 {
			t.Fatalf("POST on a new connection: %v (%d connections)", err, s.conns.Load())
		}
	})
	t.Run("new connection not retried", func(t *testing.T) {
		s := startRaw(t, func(int, *http.Request, []byte) []byte { return nil })
		c := newClient(s.url, 1)
		if err := c.getRecord(context.Background(), testDID, "r"); err == nil {
			t.Fatal("GET without an answer succeeded")
		}
		if r := s.reqs.Load(); r != 1 {
			t.Fatalf("a GET on a new connection was sent %d times", r)
		}
	})
}

// TestLeanKeepsConnectionAfterDeadline: a connection whose last request ran under a context deadline that has
// since passed is still used (the idle check must not fail on the old deadline).
func TestLeanKeepsConnectionAfterDeadline(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":{}}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(srv.URL, 1)
	c.lean.idleCheck = 10 * time.Millisecond
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := c.getRecord(ctx, testDID, "r")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.getRecord(context.Background(), testDID, "r"); err != nil || conns.Load() != 1 {
		t.Fatalf("%v; %d connections for 4 calls", err, conns.Load())
	}
}

func TestLeanContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(srv.URL, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := c.getRecord(ctx, testDID, "r")
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil || time.Since(t0) > 5*time.Second {
		t.Fatalf("after %v: %v (ctx %v)", time.Since(t0), err, ctx.Err())
	}
}

func TestLeanTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":{}}`)
	}))
	defer srv.Close()
	c := newClient(srv.URL, 1)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.lean.tls.RootCAs = roots
	for range 2 {
		if err := c.getRecord(context.Background(), testDID, "r"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendQueryEscape(t *testing.T) {
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	for _, s := range []string{"", testDID, "3lbenchrkey22", "a b+c&d=e/f?g~h.i_j-k", string(all)} {
		if got := string(appendQueryEscape(nil, s)); got != url.QueryEscape(s) {
			t.Errorf("%q: %s, want %s", s, got, url.QueryEscape(s))
		}
	}
}

// TestLeanAgainstOurServer: the measured calls against the real server, checked against net/http's answers.
func TestLeanAgainstOurServer(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	c := newClient(p.URL, 2)
	ctx := context.Background()
	a, err := c.createAccount(ctx, "lean.test", "lean@example.com", "lean-password", "")
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for i := range 3 {
		out, err := c.createRecord(ctx, a, fmt.Sprintf("lean post %d", i))
		if err != nil || !strings.HasPrefix(out.URI, "at://"+a.DID+"/"+benchCollection+"/") || out.CID == "" {
			t.Fatalf("createRecord: %+v %v", out, err)
		}
		uris = append(uris, out.URI)
	}
	for i, u := range uris {
		rkey := u[strings.LastIndexByte(u, '/')+1:]
		if err := c.getRecord(ctx, a.DID, rkey); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Value struct {
				Text      string `json:"text"`
				CreatedAt string `json:"createdAt"`
			} `json:"value"`
		}
		_, err := c.call(ctx, http.MethodGet, "com.atproto.repo.getRecord",
			url.Values{"repo": {a.DID}, "collection": {benchCollection}, "rkey": {rkey}}, nil, &got, reqOpts{})
		if _, perr := time.Parse(createdAtLayout, got.Value.CreatedAt); err != nil || perr != nil || got.Value.Text != fmt.Sprintf("lean post %d", i) {
			t.Fatalf("record %s: %+v %v %v", u, got, err, perr)
		}
	}
	var xe *xrpcError
	if err := c.getRecord(ctx, a.DID, "3lnosuchrkey2"); !errors.As(err, &xe) || xe.Status != 400 || xe.Name != "RecordNotFound" {
		t.Fatalf("missing record: %v", err)
	}
	cursor, n, err := c.listRecords(ctx, a.DID, 2, "")
	if err != nil || n != 2 || cursor == "" {
		t.Fatalf("first page: %q %d %v", cursor, n, err)
	}
	if _, n, err = c.listRecords(ctx, a.DID, 2, cursor); err != nil || n != 1 {
		t.Fatalf("second page: %d %v", n, err)
	}
	var car bytes.Buffer
	size, err := c.getRepo(ctx, a.DID, &car)
	if err != nil || size != int64(car.Len()) {
		t.Fatalf("getRepo: %d %v", size, err)
	}
	want, err := c.call(ctx, http.MethodGet, "com.atproto.sync.getRepo", url.Values{"did": {a.DID}}, nil, nil, reqOpts{})
	if err != nil || want != size || size < 200 {
		t.Fatalf("getRepo: %d bytes, net/http read %d (%v)", size, want, err)
	}
	if n := len(c.lean.idle); n != 1 {
		t.Fatalf("calls one after another left %d connections", n)
	}
}

// BenchmarkGetRecordClient compares the tool's cost per getRecord (client and a trivial server together).
func BenchmarkGetRecordClient(b *testing.B) {
	body := []byte(`{"uri":"at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3lbenchrkey22","cid":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm","value":{"$type":"app.bsky.feed.post","text":"read repo record 1","createdAt":"2026-11-26T00:00:01.250Z"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	c := newClient(srv.URL, 1)
	ctx := context.Background()
	params := url.Values{"repo": {testDID}, "collection": {benchCollection}, "rkey": {"3lbenchrkey22"}}
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.getRecord(ctx, testDID, "3lbenchrkey22"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net_http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.call(ctx, http.MethodGet, "com.atproto.repo.getRecord", params, nil, nil, reqOpts{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
