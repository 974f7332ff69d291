package pds_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
)

// fakeClock is the rate limiters' clock: tests move it past a window instead of waiting minutes.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func startLimited(t *testing.T, env map[string]string) (*testpds.PDS, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	e := map[string]string{"PDS_RATE_LIMITS_ENABLED": "true", "PDS_RATE_LIMIT_BYPASS_KEY": "let-me-through"}
	for k, v := range env {
		e[k] = v
	}
	return testpds.Start(t, testpds.Options{Env: e, RateLimitClock: clock.Now}), clock
}

// sessionAttempt is a createSession for an unknown identifier (cheap: no password hash to check).
func sessionAttempt(t *testing.T, p *testpds.PDS, identifier string, header http.Header) *testpds.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"identifier": identifier, "password": "x"})
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/xrpc/com.atproto.server.createSession", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return p.Do(req, "")
}

func TestRateLimitCreateSession(t *testing.T) {
	t.Parallel()
	p, clock := startLimited(t, nil)
	for i := 1; i <= 30; i++ {
		r := sessionAttempt(t, p, "nobody.test", nil)
		testpds.WantStatus(t, r, 401, "AuthenticationRequired")
		if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(30-i) {
			t.Fatalf("attempt %d: RateLimit-Remaining %q", i, got)
		}
	}
	r := sessionAttempt(t, p, "nobody.test", nil)
	testpds.WantStatus(t, r, http.StatusTooManyRequests, "RateLimitExceeded")
	reset, _ := strconv.ParseInt(r.Header.Get("RateLimit-Reset"), 10, 64)
	if r.Header.Get("RateLimit-Limit") != "30" || r.Header.Get("RateLimit-Remaining") != "0" ||
		r.Header.Get("RateLimit-Policy") != "30;w=300" || r.Header.Get("Retry-After") == "" ||
		reset < clock.Now().Add(4*time.Minute).Unix() || reset > clock.Now().Add(5*time.Minute+time.Second).Unix() {
		t.Fatalf("429 headers: %v", r.Header)
	}
	// The key is identifier + IP: another identifier is not limited.
	testpds.WantStatus(t, sessionAttempt(t, p, "other.test", nil), 401, "AuthenticationRequired")
	// The bypass key passes; a wrong one does not.
	testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", http.Header{"X-Ratelimit-Bypass": {"let-me-through"}}), 401, "AuthenticationRequired")
	testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", http.Header{"X-Ratelimit-Bypass": {"guess"}}), 429, "RateLimitExceeded")

	// The window ends five minutes after it began.
	clock.Advance(4*time.Minute + 50*time.Second)
	testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", nil), 429, "RateLimitExceeded")
	clock.Advance(11 * time.Second)
	r = sessionAttempt(t, p, "nobody.test", nil)
	testpds.WantStatus(t, r, 401, "AuthenticationRequired")
	if r.Header.Get("RateLimit-Remaining") != "29" {
		t.Fatalf("after the window: %v", r.Header)
	}
}

// X-Forwarded-For names the client only when the peer is a trusted proxy (loopback is, by default).
func TestRateLimitClientIP(t *testing.T) {
	t.Parallel()
	t.Run("trusted proxy", func(t *testing.T) {
		p, _ := startLimited(t, nil)
		xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"198.51.100.1, " + ip}} }
		for range 30 {
			sessionAttempt(t, p, "nobody.test", xff("203.0.113.7"))
		}
		testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", xff("203.0.113.7")), 429, "RateLimitExceeded")
		testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", xff("203.0.113.8")), 401, "AuthenticationRequired")
	})
	t.Run("untrusted peer", func(t *testing.T) {
		p, _ := startLimited(t, map[string]string{"PDS_TRUSTED_PROXIES": "none"})
		for i := range 30 {
			sessionAttempt(t, p, "nobody.test", http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i)}})
		}
		// A client cannot escape its limit by inventing X-Forwarded-For addresses.
		testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", http.Header{"X-Forwarded-For": {"203.0.113.99"}}), 429, "RateLimitExceeded")
	})
	t.Run("bypass IP", func(t *testing.T) {
		p, _ := startLimited(t, map[string]string{"PDS_RATE_LIMIT_BYPASS_IPS": "203.0.113.50"})
		h := http.Header{"X-Forwarded-For": {"203.0.113.50"}}
		for range 40 {
			testpds.WantStatus(t, sessionAttempt(t, p, "nobody.test", h), 401, "AuthenticationRequired")
		}
	})
}

// Repo writes share 5000 points an hour per account: create 3, update 2, delete 1.
func TestRateLimitRepoWrites(t *testing.T) {
	t.Parallel()
	p, clock := startLimited(t, nil)
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	deletes := func(n int) map[string]any {
		w := make([]map[string]any, n)
		for i := range w {
			w[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": fmt.Sprintf("3aaaaaaaaa%03d", i)}
		}
		return map[string]any{"repo": alice.DID, "writes": w}
	}
	r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("x")}, alice.AccessJwt)
	testpds.MustOK(t, r)
	if r.Header.Get("RateLimit-Remaining") != "4997" || r.Header.Get("RateLimit-Policy") != "5000;w=3600" {
		t.Fatalf("createRecord headers: %v", r.Header)
	}
	// 24 batches of 200 deletes: 4800 more points (4997 - 4800 = 197 left).
	for i := range 24 {
		r = p.Procedure("com.atproto.repo.applyWrites", deletes(200), alice.AccessJwt)
		if r.Status == http.StatusTooManyRequests {
			t.Fatalf("batch %d limited: %s", i, r)
		}
	}
	if r.Header.Get("RateLimit-Remaining") != "197" {
		t.Fatalf("after 4803 points: %v", r.Header)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.applyWrites", deletes(198), alice.AccessJwt), 429, "RateLimitExceeded")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("y")}, alice.AccessJwt), 429, "RateLimitExceeded")
	// Per account: bob writes on.
	testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": bob.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("y")}, bob.AccessJwt))
	// Reads are not repo writes.
	testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, alice.AccessJwt))
	clock.Advance(time.Hour)
	testpds.MustOK(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("z")}, alice.AccessJwt))
}

// The global limit: 3000 XRPC requests per 5 minutes per IP; getRepo has its own budget.
func TestRateLimitGlobal(t *testing.T) {
	t.Parallel()
	p, clock := startLimited(t, nil)
	alice := p.CreateAccount("alice") // one request from this IP already
	get := func(nsid, ip string) *testpds.Response {
		u := p.URL + "/xrpc/" + nsid
		if nsid == "com.atproto.sync.getLatestCommit" || nsid == "com.atproto.sync.getRepo" {
			u += "?did=" + alice.DID
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Forwarded-For", ip)
		return p.Do(req, "")
	}
	for i := 0; i < 3000; i++ {
		if r := get("com.atproto.sync.getLatestCommit", "192.0.2.1"); r.Status != 200 {
			t.Fatalf("request %d: %s", i+1, r)
		}
	}
	r := get("com.atproto.server.describeServer", "192.0.2.1")
	testpds.WantStatus(t, r, 429, "RateLimitExceeded")
	if r.Header.Get("RateLimit-Policy") != "3000;w=300" {
		t.Fatalf("global 429 headers: %v", r.Header)
	}
	// Unknown methods count too; non-XRPC paths and getRepo do not.
	testpds.WantStatus(t, get("com.example.unknown", "192.0.2.1"), 429, "RateLimitExceeded")
	if r := get("com.atproto.sync.getRepo", "192.0.2.1"); r.Status != 200 {
		t.Fatalf("getRepo counted against the global limit: %s", r)
	}
	if r := get("com.atproto.server.describeServer", "192.0.2.2"); r.Status != 200 {
		t.Fatalf("another IP: %s", r)
	}
	clock.Advance(5 * time.Minute)
	if r := get("com.atproto.server.describeServer", "192.0.2.1"); r.Status != 200 {
		t.Fatalf("after the window: %s", r)
	}
}
