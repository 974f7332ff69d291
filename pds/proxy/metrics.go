package proxy

import (
	"net"
	"net/http"
	"time"

	"github.com/pdsgo/pds/internal/ssrf"
)

// Metrics receives every outbound call's outcome (pds/metrics). service is "appview", "mod", "report" (the
// configured services, by host and port) or "other" (a service named by an atproto-proxy header or a push
// registration); status is the HTTP status, 0 when no response came; d is the time until the response
// headers.
type Metrics interface {
	ProxyCall(service string, status int, d time.Duration)
}

// Service names in Metrics calls.
const (
	ServiceAppView = "appview"
	ServiceMod     = "mod"
	ServiceReport  = "report"
	ServiceOther   = "other"
)

// observedTransport reports each round trip to a Metrics.
type observedTransport struct {
	next    http.RoundTripper
	metrics Metrics
	names   map[string]string // host:port -> service name
}

func newObservedTransport(next http.RoundTripper, m Metrics, cfg *Config) *observedTransport {
	t := &observedTransport{next: next, metrics: m, names: map[string]string{}}
	// Reversed so that the first listed wins when two share a host (the report service defaults to the mod one).
	for _, s := range []struct {
		svc  *Service
		name string
	}{{cfg.ReportService, ServiceReport}, {cfg.ModService, ServiceMod}, {cfg.AppView, ServiceAppView}} {
		if s.svc != nil {
			if hp := ssrf.HostPort(s.svc.URL); hp != "" {
				t.names[hp] = s.name
			}
		}
	}
	return t
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	name, ok := t.names[urlHostPort(req.URL.Scheme, req.URL.Hostname(), req.URL.Port())]
	if !ok {
		name = ServiceOther
	}
	t.metrics.ProxyCall(name, status, time.Since(start))
	return resp, err
}

// urlHostPort is host:port with the scheme's default port filled in.
func urlHostPort(scheme, host, port string) string {
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}
