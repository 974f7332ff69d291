package ratelimit

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/xrpc"
	limiter "github.com/pdsgo/pds/xrpc/ratelimit"
)

// IPExtractor derives the client IP: the peer's address, or, when the peer is a trusted proxy, the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (Express's "trust proxy", which the reference uses).
func IPExtractor(trusted []netip.Prefix) echo.IPExtractor {
	isTrusted := func(a netip.Addr) bool { return inPrefixes(a, trusted) }
	return func(req *http.Request) string {
		host, _, err := net.SplitHostPort(req.RemoteAddr)
		if err != nil {
			host = req.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err != nil {
			return host
		}
		client := peer.Unmap()
		if !isTrusted(client) {
			return client.String()
		}
		hops := req.Header.Values("X-Forwarded-For")
		var addrs []string
		for _, h := range hops {
			for _, a := range strings.Split(h, ",") {
				addrs = append(addrs, strings.TrimSpace(a))
			}
		}
		for i := len(addrs) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(addrs[i])
			if err != nil {
				break // garbage: stop at the last address we could trust
			}
			client = a.Unmap()
			if !isTrusted(client) {
				break
			}
		}
		return client.String()
	}
}

// Limits holds the server's limiters. A nil *Limits limits nothing (PDS_RATE_LIMITS_ENABLED=false).
type Limits struct {
	now     func() time.Time
	bypass  Bypass
	metrics Metrics
	caller  func(echo.Context) string

	globalIP *limiter.Limiter // every XRPC request but getRepo, per client IP
	getRepo  *limiter.Limiter
	// Repo writes share two budgets per account: creates cost 3, updates 2, deletes 1.
	writeHour, writeDay *limiter.Limiter

	createAccount                       *limiter.Limiter
	reserveSigningKey                   *limiter.Limiter // not limited by the reference; each call stores a key
	createSession5m, createSession      *limiter.Limiter
	updateHandle5m, updateHandle        *limiter.Limiter
	uploadBlob                          *limiter.Limiter
	deleteAccount                       *limiter.Limiter
	resetPassword                       *limiter.Limiter
	passwordResetHour, passwordResetDay *limiter.Limiter
	emailHour, emailDay                 *limiter.Limiter // per route: confirmation, update, account delete
	emailUpdateHour, emailUpdateDay     *limiter.Limiter
	accountDeleteHour, accountDeleteDay *limiter.Limiter
}

// Options adjust the limiters: a clock to move instead of waiting out windows (tests), and the metrics hook.
type Options struct {
	Now func() time.Time
	// Metrics, when set, is told each refusal.
	Metrics Metrics
}

// Metrics receives the refusals (pds/metrics); limit is the exceeded limiter's name, one of a fixed set
// ("global-ip", "createSession-5m", "repo-write-hour"...).
type Metrics interface {
	Refused(limit string)
}

// Bypass names the requests no limit applies to (PDS_RATE_LIMIT_BYPASS_KEY, PDS_RATE_LIMIT_BYPASS_IPS).
type Bypass struct {
	Key string   // requests with header x-ratelimit-bypass: <Key>
	IPs []string // client IPs
}

const (
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// New builds the reference PDS's limits. caller names the authenticated account of a request ("" when
// none): per-account limits key on it.
func New(opts Options, bypass Bypass, caller func(echo.Context) syntax.DID) *Limits {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	mk := func(name string, points int, window time.Duration) *limiter.Limiter {
		l := limiter.New(name, points, window)
		l.Now = now
		return l
	}
	return &Limits{
		now:               now,
		bypass:            bypass,
		metrics:           opts.Metrics,
		caller:            func(c echo.Context) string { return caller(c).String() },
		globalIP:          mk("global-ip", 3000, 5*minute),
		getRepo:           mk("getRepo", 6000, 5*minute),
		writeHour:         mk("repo-write-hour", 5000, hour),
		writeDay:          mk("repo-write-day", 35000, day),
		createAccount:     mk("createAccount", 100, 5*minute),
		reserveSigningKey: mk("reserveSigningKey", 100, 5*minute),
		createSession5m:   mk("createSession-5m", 30, 5*minute),
		createSession:     mk("createSession-day", 300, day),
		updateHandle5m:    mk("updateHandle-5m", 10, 5*minute),
		updateHandle:      mk("updateHandle-day", 50, day),
		uploadBlob:        mk("uploadBlob", 1000, day),
		deleteAccount:     mk("deleteAccount", 50, 5*minute),
		resetPassword:     mk("resetPassword", 50, 5*minute),
		passwordResetHour: mk("requestPasswordReset-hour", 15, hour),
		passwordResetDay:  mk("requestPasswordReset-day", 50, day),
		emailHour:         mk("requestEmailConfirmation-hour", 5, hour),
		emailDay:          mk("requestEmailConfirmation-day", 15, day),
		emailUpdateHour:   mk("requestEmailUpdate-hour", 5, hour),
		emailUpdateDay:    mk("requestEmailUpdate-day", 15, day),
		accountDeleteHour: mk("requestAccountDelete-hour", 5, hour),
		accountDeleteDay:  mk("requestAccountDelete-day", 15, day),
	}
}

// rule is one limiter applied to a route with its key and cost.
type rule struct {
	l      *limiter.Limiter
	key    func(c echo.Context) string // "" skips the rule
	points func(c echo.Context) int
}

// bypassed: the bypass key header or a bypass IP.
func (l *Limits) bypassed(c echo.Context) bool {
	if k := l.bypass.Key; k != "" {
		if got := c.Request().Header.Get("x-ratelimit-bypass"); got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return true
		}
	}
	if len(l.bypass.IPs) > 0 {
		ip := c.RealIP()
		for _, b := range l.bypass.IPs {
			if b == ip {
				return true
			}
		}
	}
	return false
}

// applyRules consumes points from every rule, sets the tightest limit's headers, and refuses the request with
// 429 RateLimitExceeded when one is exceeded.
func (l *Limits) applyRules(c echo.Context, rules []rule) error {
	if l == nil || l.bypassed(c) {
		return nil
	}
	var statuses []limiter.Status
	exceeded := ""
	for _, r := range rules {
		key := r.key(c)
		if key == "" {
			continue
		}
		points := 1
		if r.points != nil {
			points = r.points(c)
		}
		if points < 1 {
			continue
		}
		st := r.l.Consume(key, points)
		if st.Exceeded && exceeded == "" {
			exceeded = r.l.Name
		}
		statuses = append(statuses, st)
	}
	st, ok := limiter.Tightest(statuses...)
	if !ok {
		return nil
	}
	now := l.now()
	if st.Exceeded {
		if l.metrics != nil {
			l.metrics.Refused(exceeded)
		}
		e := xrpc.RateLimitExceeded("Rate Limit Exceeded")
		for k, v := range st.Headers(now) {
			e.WithHeader(k, v)
		}
		return e
	}
	st.SetHeaders(c.Response().Header(), now)
	return nil
}

// limit is the route middleware for rules (after authentication, so keys can use the caller's DID).
func (l *Limits) limit(rules ...rule) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if l == nil {
			return next
		}
		return func(c echo.Context) error {
			if err := l.applyRules(c, rules); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// Global is the per-IP limit on every XRPC request (getRepo has its own, larger, limit).
func (l *Limits) Global(next echo.HandlerFunc) echo.HandlerFunc {
	if l == nil {
		return next
	}
	rules := []rule{{l: l.globalIP, key: byIP}}
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if !strings.HasPrefix(p, "/xrpc/") || p == "/xrpc/_health" || p == "/xrpc/com.atproto.sync.getRepo" {
			return next(c)
		}
		if err := l.applyRules(c, rules); err != nil {
			return err
		}
		return next(c)
	}
}

func byIP(c echo.Context) string { return c.RealIP() }

// Fixed is a route's cost that does not depend on the request.
func Fixed(n int) func(echo.Context) int { return func(echo.Context) int { return n } }

// peekJSON decodes the request body into v and puts the body back for the handler (limits whose key or cost
// depends on the input). An unreadable body decodes to nothing: the handler reports it.
func peekJSON(c echo.Context, v any) {
	req := c.Request()
	if req.Body == nil {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, xrpc.RecordBodyLimit+1))
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(raw), req.Body))
	if err != nil {
		return
	}
	_ = json.Unmarshal(raw, v)
}

// sessionKey is createSession's key: identifier and IP, as the reference.
func sessionKey(c echo.Context) string {
	var in struct {
		Identifier string `json:"identifier"`
	}
	peekJSON(c, &in)
	return strings.ToLower(strings.TrimSpace(in.Identifier)) + "-" + c.RealIP()
}

// ApplyWritesPoints costs an applyWrites batch: create 3, update 2, delete 1.
func ApplyWritesPoints(c echo.Context) int {
	var in struct {
		Writes []struct {
			Type string `json:"$type"`
		} `json:"writes"`
	}
	peekJSON(c, &in)
	n := 0
	for _, w := range in.Writes {
		switch w.Type {
		case "com.atproto.repo.applyWrites#create":
			n += 3
		case "com.atproto.repo.applyWrites#update":
			n += 2
		default:
			n++
		}
	}
	return n
}

// Write is the repo-write limit (pds/routes.go attaches it), points per request.
func (l *Limits) Write(points func(echo.Context) int) echo.MiddlewareFunc {
	if l == nil {
		return l.limit()
	}
	return l.limit(rule{l.writeHour, l.caller, points}, rule{l.writeDay, l.caller, points})
}

// Route is the named route's limit (pds/routes.go attaches it); an unknown name panics at start.
func (l *Limits) Route(name string) echo.MiddlewareFunc {
	if l == nil {
		return l.limit()
	}
	byDID := l.caller
	switch name {
	case "createAccount":
		return l.limit(rule{l.createAccount, byIP, nil})
	case "reserveSigningKey":
		return l.limit(rule{l.reserveSigningKey, byIP, nil})
	case "createSession":
		return l.limit(rule{l.createSession5m, sessionKey, nil}, rule{l.createSession, sessionKey, nil})
	case "updateHandle":
		return l.limit(rule{l.updateHandle5m, byDID, nil}, rule{l.updateHandle, byDID, nil})
	case "uploadBlob":
		return l.limit(rule{l.uploadBlob, byDID, nil})
	case "deleteAccount":
		return l.limit(rule{l.deleteAccount, byIP, nil})
	case "resetPassword":
		return l.limit(rule{l.resetPassword, byIP, nil})
	case "requestPasswordReset":
		return l.limit(rule{l.passwordResetHour, byIP, nil}, rule{l.passwordResetDay, byIP, nil})
	case "requestEmailConfirmation":
		return l.limit(rule{l.emailHour, byDID, nil}, rule{l.emailDay, byDID, nil})
	case "requestEmailUpdate":
		return l.limit(rule{l.emailUpdateHour, byDID, nil}, rule{l.emailUpdateDay, byDID, nil})
	case "requestAccountDelete":
		return l.limit(rule{l.accountDeleteHour, byDID, nil}, rule{l.accountDeleteDay, byDID, nil})
	case "getRepo":
		return l.limit(rule{l.getRepo, byIP, nil})
	}
	panic("unknown rate limit " + name)
}

// TrustedPeer reports whether the connection's peer (an http.Request's RemoteAddr) is one of the trusted
// proxies, whose headers (X-Forwarded-For, X-Request-Id) are believed.
func TrustedPeer(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && inPrefixes(a, trusted)
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
