package pds_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds"
)

// rawRequest sends a request head written by hand over TCP and returns the answer's status.
func rawRequest(t *testing.T, p *testpds.PDS, head string) int {
	t.Helper()
	u, _ := url.Parse(p.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	// The server may answer and close before reading all of a huge head: a write error then is fine.
	go conn.Write([]byte(head))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// head builds a request head for path with the given extra header lines.
func head(host, path string, extra []string, upgrade bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, host)
	if upgrade {
		b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func lines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-L%d: v", i)
	}
	return out
}

// TestHeaderLimits: a request head over pds.MaxHeaderBytes, or with more than pds.MaxHeaderLines header lines,
// is a 431, for XRPC calls and for the firehose's websocket upgrade alike; requests within the limits pass.
func TestHeaderLimits(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	host := strings.TrimPrefix(p.URL, "http://")
	const health, firehose = "/xrpc/_health", "/xrpc/com.atproto.sync.subscribeRepos"
	big := func(n int) []string { return []string{"X-Big: " + strings.Repeat("a", n)} }
	for _, tc := range []struct {
		name    string
		path    string
		extra   []string
		upgrade bool
		want    int
	}{
		{"ordinary", health, lines(10), false, 200},
		{"a header near the byte limit", health, big(pds.MaxHeaderBytes - 512), false, 200},
		{"a 64 KB header", health, big(64 << 10), false, 431},
		{"a 1 MB header", health, big(1 << 20), false, 431},
		{"lines at the limit", health, lines(pds.MaxHeaderLines - 1), false, 200}, // + Host
		{"one line over", health, lines(pds.MaxHeaderLines), false, 431},
		{"2000 lines", health, lines(2000), false, 431},
		{"upgrade", firehose, nil, true, 101},
		{"upgrade with a 64 KB header", firehose, big(64 << 10), true, 431},
		{"upgrade with 2000 lines", firehose, lines(2000), true, 431},
	} {
		if got := rawRequest(t, p, head(host, tc.path, tc.extra, tc.upgrade)); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
	// The server still serves after all that.
	testpds.WantStatus(t, p.Query("com.atproto.server.describeServer", nil, ""), 200, "")
}
