package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values for requests outside the known sets, so that no client can grow the label sets.
const (
	UnknownMethod  = "unknown"   // an NSID that is neither served here nor in the embedded lexicons
	UnmatchedRoute = "unmatched" // a path no route matched
)

// requests are the per-request metrics. The label values are fixed sets given once (Routes): a request looks
// its method up in a read-only map and reuses the children resolved on its first use, so recording a request
// takes a map lookup, a short scan for its status and two atomic adds, and no allocation.
type requests struct {
	xrpcTotal    *prometheus.CounterVec
	xrpcDuration *prometheus.HistogramVec
	httpTotal    *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	methods            map[string]*route // by NSID; written by Routes before the server serves
	paths              map[string]*route // by echo route path
	unknown, unmatched *route
}

func (r *requests) init(f factory) {
	r.xrpcTotal = f.counterVec("pds_xrpc_requests_total", "XRPC requests by method (NSID; \"unknown\" for methods neither served here nor in the lexicons) and HTTP status.", "nsid", "status")
	r.xrpcDuration = f.histogramVec("pds_xrpc_request_duration_seconds", "XRPC request latency by method, until the handler returns (subscribeRepos not included: it is a stream).", latencyBuckets, "nsid")
	r.httpTotal = f.counterVec("pds_http_requests_total", "Requests outside /xrpc/ (OAuth, account pages, well-known, health) by route pattern and HTTP status.", "route", "status")
	r.httpDuration = f.histogramVec("pds_http_request_duration_seconds", "Latency of requests outside /xrpc/, by route pattern.", latencyBuckets, "route")
	r.methods = map[string]*route{}
	r.paths = map[string]*route{}
	r.unknown = &route{name: UnknownMethod, total: r.xrpcTotal, duration: r.xrpcDuration}
	r.unmatched = &route{name: UnmatchedRoute, total: r.httpTotal, duration: r.httpDuration}
}

// Routes sets the label values: methods (NSIDs: those served here and those of the lexicons, which the proxy
// forwards), streams (methods whose latency is a connection's lifetime: counted, not timed) and paths (the
// router's route patterns). Called once, before the server serves.
func (m *Metrics) Routes(methods, streams, paths []string) {
	r := &m.requests
	for _, n := range methods {
		if r.methods[n] == nil {
			r.methods[n] = &route{name: n, total: r.xrpcTotal, duration: r.xrpcDuration}
		}
	}
	for _, n := range streams {
		if rt := r.methods[n]; rt != nil {
			rt.duration = nil
		} else {
			r.methods[n] = &route{name: n, total: r.xrpcTotal}
		}
	}
	for _, p := range paths {
		if r.paths[p] == nil {
			r.paths[p] = &route{name: p, total: r.httpTotal, duration: r.httpDuration}
		}
	}
}

// Request records a finished request: nsid is its XRPC method ("" for other requests), path its route
// pattern (c.Path()).
func (m *Metrics) Request(nsid, path string, status int, d time.Duration) {
	r := &m.requests
	var rt *route
	if nsid != "" {
		if rt = r.methods[nsid]; rt == nil {
			rt = r.unknown
		}
	} else if rt = r.paths[path]; rt == nil {
		rt = r.unmatched
	}
	rt.observe(status, d)
}

// route is one label value's children, resolved on first use.
type route struct {
	name     string
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec // nil: not timed

	once  sync.Once
	timer prometheus.Observer

	mu    sync.Mutex
	codes atomic.Pointer[[]statusCounter] // copy-on-write: a route sees a handful of statuses
}

type statusCounter struct {
	status int
	c      prometheus.Counter
}

func (rt *route) observe(status int, d time.Duration) {
	rt.once.Do(func() {
		if rt.duration != nil {
			rt.timer = rt.duration.WithLabelValues(rt.name)
		}
	})
	if rt.timer != nil {
		rt.timer.Observe(d.Seconds())
	}
	rt.counter(status).Inc()
}

func (rt *route) counter(status int) prometheus.Counter {
	if p := rt.codes.Load(); p != nil {
		for _, sc := range *p {
			if sc.status == status {
				return sc.c
			}
		}
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var old []statusCounter
	if p := rt.codes.Load(); p != nil {
		old = *p
		for _, sc := range old {
			if sc.status == status {
				return sc.c
			}
		}
	}
	c := rt.total.WithLabelValues(rt.name, statusText(status))
	next := append(old[:len(old):len(old)], statusCounter{status, c})
	rt.codes.Store(&next)
	return c
}

// statusText is an HTTP status as a label value; anything outside 100-599 is "other" (a bounded set).
func statusText(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}
