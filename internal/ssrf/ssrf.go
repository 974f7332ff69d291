// Package ssrf guards outbound HTTP fetches whose target a user can influence (handle and DID resolution, service
// proxying, crawlers, custom-domain checks): connections may only reach public unicast addresses. The check runs
// at connect time on the resolved IP (a net.Dialer Control func), so DNS rebinding cannot get around it.
//
// Operator-configured services (PLC directory, AppView...) may live on private networks: pass their host:port in
// the allow list. Those exact host:port pairs are dialed without the address check.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbidden is wrapped by every refused connection: test with errors.Is.
var ErrForbidden = errors.New("ssrf: destination address is not public")

// IsPublic reports whether ip is a public unicast address: not loopback, private (RFC 1918, fc00::/7),
// link-local, CGNAT, multicast, unspecified, documentation, benchmarking or reserved space. IPv4-mapped IPv6
// addresses are judged as IPv4; outside 2000::/3 no IPv6 address is public.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsUnspecified() {
		return false
	}
	if ip.Is4() {
		for _, p := range reservedV4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	if !globalUnicastV6.Contains(ip) {
		return false
	}
	for _, p := range reservedV6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var (
	reservedV4 = prefixes(
		"0.0.0.0/8",       // "this" network
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, broadcast
	)
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	reservedV6      = prefixes(
		"2001::/32",     // Teredo (tunnels to an embedded IPv4 address)
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4 (embeds an IPv4 address)
	)
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Control is a net.Dialer Control func that refuses connections to non-public addresses.
func Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrForbidden, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !IsPublic(ip) {
		return fmt.Errorf("%w: %s", ErrForbidden, host)
	}
	return nil
}

// DialContext returns a dial func for http.Transport. With allowPrivate every address may be dialed (tests,
// development); otherwise only public addresses, except for the host:port pairs in allow (canonical form, see
// HostPort), which are operator configuration.
func DialContext(allowPrivate bool, allow ...string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	open := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if allowPrivate {
		return open.DialContext
	}
	guarded := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: Control}
	allowed := map[string]bool{}
	for _, a := range allow {
		if a != "" {
			allowed[strings.ToLower(a)] = true
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if allowed[strings.ToLower(addr)] {
			return open.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// NewTransport returns an http.Transport (http.DefaultTransport's settings) whose connections go through
// DialContext(allowPrivate, allow...). When guarded it ignores HTTP_PROXY-style environment variables: a proxy
// would make every destination look like the proxy's address.
func NewTransport(allowPrivate bool, allow ...string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = DialContext(allowPrivate, allow...)
	if !allowPrivate {
		t.Proxy = nil
	}
	return t
}

// NewClient is an http.Client over NewTransport with an overall timeout.
func NewClient(allowPrivate bool, timeout time.Duration, allow ...string) *http.Client {
	return &http.Client{Transport: NewTransport(allowPrivate, allow...), Timeout: timeout}
}

// HostPort is the canonical host:port of an http(s) URL as the transport dials it (default ports filled in),
// for the allow list. It returns "" for anything else.
func HostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		default:
			return ""
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// CheckURL rejects URLs a guarded fetch must not even try: schemes other than https (and http when
// allowHTTP), and IP-literal hosts that are not public. Host names are checked when dialed.
func CheckURL(rawURL string, allowHTTP bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: not an absolute URL", ErrForbidden)
	}
	if u.Scheme != "https" && !(allowHTTP && u.Scheme == "http") {
		return fmt.Errorf("%w: scheme %q", ErrForbidden, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL carries credentials", ErrForbidden)
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !IsPublic(ip) {
		return fmt.Errorf("%w: %s", ErrForbidden, ip)
	}
	return nil
}
