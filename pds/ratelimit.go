package pds

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
	"github.com/pdsgo/pds/xrpc/ratelimit"
)

// loadRateLimits reads the rate-limit and proxy settings.
func (c *Config) loadRateLimits(getenv Getenv) error {
	var err error
	if c.RateLimitsEnabled, err = boolEnv(getenv, "PDS_RATE_LIMITS_ENABLED", true); err != nil {
		return err
	}
	c.RateLimitBypassKey = getenv("PDS_RATE_LIMIT_BYPASS_KEY")
	for _, ip := range splitList(getenv("PDS_RATE_LIMIT_BYPASS_IPS")) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("PDS_RATE_LIMIT_BYPASS_IPS: %q is not an IP address", ip)
		}
		c.RateLimitBypassIPs = append(c.RateLimitBypassIPs, a.Unmap().String())
	}
	proxies := getenv("PDS_TRUSTED_PROXIES")
	if proxies == "" {
		proxies = "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
	}
	if strings.TrimSpace(proxies) != "none" {
		for _, p := range splitList(proxies) {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				a, aerr := netip.ParseAddr(p)
				if aerr != nil {
					return fmt.Errorf("PDS_TRUSTED_PROXIES: %q is not an IP address or CIDR range", p)
				}
				pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
		}
	}
	// The reference trusts X-Forwarded-For from its bypass IPs too.
	for _, ip := range c.RateLimitBypassIPs {
		a := netip.MustParseAddr(ip)
		c.TrustedProxies = append(c.TrustedProxies, netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}

// ipExtractor derives the client IP: the peer's address, or, when the peer is a trusted proxy, the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (Express's "trust proxy", which the reference uses).
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
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

// rateLimits holds the server's limiters (nil when PDS_RATE_LIMITS_ENABLED=false).
type rateLimits struct {
	now func() time.Time

	globalIP *ratelimit.Limiter // every XRPC request but getRepo, per client IP
	getRepo  *ratelimit.Limiter
	// Repo writes share two budgets per account: creates cost 3, updates 2, deletes 1.
	writeHour, writeDay *ratelimit.Limiter

	createAccount                       *ratelimit.Limiter
	createSession5m, createSession      *ratelimit.Limiter
	updateHandle5m, updateHandle        *ratelimit.Limiter
	uploadBlob                          *ratelimit.Limiter
	deleteAccount                       *ratelimit.Limiter
	resetPassword                       *ratelimit.Limiter
	passwordResetHour, passwordResetDay *ratelimit.Limiter
	emailHour, emailDay                 *ratelimit.Limiter // per route: confirmation, update, account delete
	emailUpdateHour, emailUpdateDay     *ratelimit.Limiter
	accountDeleteHour, accountDeleteDay *ratelimit.Limiter
}

// RateLimitOptions adjust the limiters for tests: a clock to move instead of waiting out windows.
type RateLimitOptions struct {
	Now func() time.Time
}

const (
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// newRateLimits builds the reference PDS's limits.
func newRateLimits(opts RateLimitOptions) *rateLimits {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	mk := func(name string, points int, window time.Duration) *ratelimit.Limiter {
		l := ratelimit.New(name, points, window)
		l.Now = now
		return l
	}
	return &rateLimits{
		now:               now,
		globalIP:          mk("global-ip", 3000, 5*minute),
		getRepo:           mk("getRepo", 6000, 5*minute),
		writeHour:         mk("repo-write-hour", 5000, hour),
		writeDay:          mk("repo-write-day", 35000, day),
		createAccount:     mk("createAccount", 100, 5*minute),
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
	l      *ratelimit.Limiter
	key    func(c echo.Context) string // "" skips the rule
	points func(c echo.Context) int
}

// bypassed: the bypass key header or a bypass IP.
func (s *Server) rateLimitBypassed(c echo.Context) bool {
	if k := s.cfg.RateLimitBypassKey; k != "" {
		if got := c.Request().Header.Get("x-ratelimit-bypass"); got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return true
		}
	}
	if len(s.cfg.RateLimitBypassIPs) > 0 {
		ip := c.RealIP()
		for _, b := range s.cfg.RateLimitBypassIPs {
			if b == ip {
				return true
			}
		}
	}
	return false
}

// applyRules consumes points from every rule, sets the tightest limit's headers, and refuses the request with
// 429 RateLimitExceeded when one is exceeded.
func (s *Server) applyRules(c echo.Context, rules []rule) error {
	if s.limits == nil || s.rateLimitBypassed(c) {
		return nil
	}
	var statuses []ratelimit.Status
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
		statuses = append(statuses, r.l.Consume(key, points))
	}
	st, ok := ratelimit.Tightest(statuses...)
	if !ok {
		return nil
	}
	now := s.limits.now()
	if st.Exceeded {
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
func (s *Server) limit(rules ...rule) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if s.limits == nil {
			return next
		}
		return func(c echo.Context) error {
			if err := s.applyRules(c, rules); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// globalRateLimit is the per-IP limit on every XRPC request (getRepo has its own, larger, limit).
func (s *Server) globalRateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limits == nil {
		return next
	}
	rules := []rule{{l: s.limits.globalIP, key: byIP}}
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if !strings.HasPrefix(p, "/xrpc/") || p == "/xrpc/_health" || p == "/xrpc/com.atproto.sync.getRepo" {
			return next(c)
		}
		if err := s.applyRules(c, rules); err != nil {
			return err
		}
		return next(c)
	}
}

func byIP(c echo.Context) string { return c.RealIP() }

func byDID(c echo.Context) string {
	if v := auth.CallerOf(c); v != nil {
		return v.DID.String()
	}
	return ""
}

func fixed(n int) func(echo.Context) int { return func(echo.Context) int { return n } }

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

// applyWritesPoints costs an applyWrites batch: create 3, update 2, delete 1.
func applyWritesPoints(c echo.Context) int {
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

// Route rule sets (routes.go attaches them).
func (s *Server) writeLimit(points func(echo.Context) int) echo.MiddlewareFunc {
	if s.limits == nil {
		return s.limit()
	}
	return s.limit(rule{s.limits.writeHour, byDID, points}, rule{s.limits.writeDay, byDID, points})
}

func (s *Server) routeLimit(name string) echo.MiddlewareFunc {
	l := s.limits
	if l == nil {
		return s.limit()
	}
	switch name {
	case "createAccount":
		return s.limit(rule{l.createAccount, byIP, nil})
	case "createSession":
		return s.limit(rule{l.createSession5m, sessionKey, nil}, rule{l.createSession, sessionKey, nil})
	case "updateHandle":
		return s.limit(rule{l.updateHandle5m, byDID, nil}, rule{l.updateHandle, byDID, nil})
	case "uploadBlob":
		return s.limit(rule{l.uploadBlob, byDID, nil})
	case "deleteAccount":
		return s.limit(rule{l.deleteAccount, byIP, nil})
	case "resetPassword":
		return s.limit(rule{l.resetPassword, byIP, nil})
	case "requestPasswordReset":
		return s.limit(rule{l.passwordResetHour, byIP, nil}, rule{l.passwordResetDay, byIP, nil})
	case "requestEmailConfirmation":
		return s.limit(rule{l.emailHour, byDID, nil}, rule{l.emailDay, byDID, nil})
	case "requestEmailUpdate":
		return s.limit(rule{l.emailUpdateHour, byDID, nil}, rule{l.emailUpdateDay, byDID, nil})
	case "requestAccountDelete":
		return s.limit(rule{l.accountDeleteHour, byDID, nil}, rule{l.accountDeleteDay, byDID, nil})
	case "getRepo":
		return s.limit(rule{l.getRepo, byIP, nil})
	}
	panic("unknown rate limit " + name)
}
