package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// XRPC proxying: a method this PDS does not serve is forwarded to the service that does (the AppView for
// app.bsky, the chat service, labelers, feed generators...) with a short-lived service-auth token signed by
// the caller's account key in place of the caller's session token.
//
// The target is the `atproto-proxy: <did>#<service id>` header, resolved through the DID document's services,
// or, without the header, the operator's default for the method's namespace. A method with neither is
// answered 501 MethodNotImplemented (the reference answers 400 "No service configured"). As in the reference,
// the AppView is the default for every namespace but the moderation service's.

// protectedMethods manage the account itself: they must be called on the PDS directly, never proxied nor
// granted through getServiceAuth (the reference's list). Lookups are case-insensitive, like the reference's.
var protectedMethods = lxmSet(
	"com.atproto.admin.sendEmail",
	"com.atproto.identity.requestPlcOperationSignature",
	"com.atproto.identity.signPlcOperation",
	"com.atproto.identity.updateHandle",
	"com.atproto.server.activateAccount",
	"com.atproto.server.confirmEmail",
	"com.atproto.server.createAppPassword",
	"com.atproto.server.deactivateAccount",
	"com.atproto.server.getAccountInviteCodes",
	"com.atproto.server.getSession",
	"com.atproto.server.listAppPasswords",
	"com.atproto.server.requestAccountDelete",
	"com.atproto.server.requestEmailConfirmation",
	"com.atproto.server.requestEmailUpdate",
	"com.atproto.server.revokeAppPassword",
	"com.atproto.server.updateEmail",
)

func lxmSet(methods ...string) map[string]bool {
	m := make(map[string]bool, len(methods))
	for _, x := range methods {
		m[strings.ToLower(x)] = true
	}
	return m
}

// IsProtectedMethod: the method manages the account itself (never proxied nor granted to service auth).
func IsProtectedMethod(nsid string) bool { return protectedMethods[strings.ToLower(nsid)] }

// IsPrivilegedMethod: refused to ordinary app passwords (direct messages, and creating accounts elsewhere
// with this identity). The reference lists the chat.bsky methods one by one; every chat.bsky method is
// privileged here, so a new one is not open to app passwords by default.
func IsPrivilegedMethod(nsid string) bool {
	l := strings.ToLower(nsid)
	return strings.HasPrefix(l, "chat.bsky.") || l == "com.atproto.server.createaccount"
}

// Service ids of the default targets.
const (
	serviceIDAppView = "bsky_appview"
	serviceIDLabeler = "atproto_labeler"
)

// defaultService is the configured service for a method without atproto-proxy header (nil: none).
func (p *Proxy) defaultService(nsid string) (*Service, string) {
	l := strings.ToLower(nsid)
	switch {
	case l == "com.atproto.moderation.createreport":
		return p.cfg.ReportService, serviceIDLabeler
	case strings.HasPrefix(l, "tools.ozone."):
		return p.cfg.ModService, serviceIDLabeler
	}
	return p.cfg.AppView, serviceIDAppView
}

// proxyTarget is where a call goes.
type proxyTarget struct {
	DID       string // the service's DID: the token's aud
	ServiceID string
	URL       string // base URL (scheme://host[:port])
}

// hasTarget reports, without any network request, whether the call could have a target: it has an
// atproto-proxy header or a default service. Checked before authentication so an unknown method is a 501.
func (p *Proxy) hasTarget(c echo.Context, nsid string) bool {
	if c.Request().Header.Get("atproto-proxy") != "" {
		return true
	}
	svc, _ := p.defaultService(nsid)
	return svc != nil
}

// Report serves com.atproto.moderation.createReport: a proxied call whose route also accepts taken-down
// accounts (reporting is their way to appeal), as the reference's does.
func (p *Proxy) Report(c echo.Context) error {
	nsid := xrpc.MethodNSID(c)
	if !p.hasTarget(c, nsid) {
		return noServiceError(nsid)
	}
	if err := p.authorizeRoute(c, nsid); err != nil {
		return err
	}
	return p.Call(c, p.CallerDID(c), nsid)
}

func noServiceError(nsid string) error {
	return xrpc.MethodNotImplemented("Method not implemented here and no service configured for %s", nsid)
}

// parseProxyHeader splits `<did>#<service id>` (the reference's checks and messages).
func parseProxyHeader(h string) (did, serviceID string, err error) {
	i := strings.IndexByte(h, '#')
	switch {
	case i == 0:
		return "", "", xrpc.InvalidRequest("no did specified in proxy header")
	case i < 0 || i == len(h)-1:
		return "", "", xrpc.InvalidRequest("no service id specified in proxy header")
	case strings.IndexByte(h[i+1:], '#') >= 0:
		return "", "", xrpc.InvalidRequest("invalid proxy header format")
	case strings.ContainsAny(h, " \t"):
		return "", "", xrpc.InvalidRequest("proxy header cannot contain spaces")
	}
	did, serviceID = h[:i], h[i+1:]
	if _, err := syntax.ParseDID(did); err != nil {
		return "", "", xrpc.InvalidRequest("invalid DID in proxy header")
	}
	return did, serviceID, nil
}

// resolveTarget finds the target of a call. Configured services are used as configured (their URL may be
// private: operator's choice); any other DID is resolved, and its endpoint must be https on a public address
// unless SSRF protection is off.
func (p *Proxy) resolveTarget(ctx context.Context, header, nsid string) (*proxyTarget, error) {
	if header == "" {
		svc, id := p.defaultService(nsid)
		if svc == nil {
			return nil, noServiceError(nsid)
		}
		return &proxyTarget{DID: svc.DID, ServiceID: id, URL: svc.URL}, nil
	}
	did, id, err := parseProxyHeader(header)
	if err != nil {
		return nil, err
	}
	if svc := p.configuredService(did, id); svc != nil {
		return &proxyTarget{DID: did, ServiceID: id, URL: svc.URL}, nil
	}
	ident, err := p.ResolveDID(ctx, syntax.DID(did))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the client went away
		}
		if !errors.Is(err, identity.ErrDIDNotFound) {
			p.Log.Info("proxy: resolving service DID", "did", did, "err", err)
		}
		return nil, xrpc.InvalidRequest("could not resolve proxy did")
	}
	endpoint := ident.GetServiceEndpoint(id)
	if endpoint == "" {
		return nil, xrpc.InvalidRequest("could not resolve proxy did service url")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, xrpc.InvalidRequest("could not resolve proxy did service url")
	}
	if !p.cfg.DisableSSRFProtection {
		if err := ssrf.CheckURL(endpoint, false); err != nil {
			return nil, xrpc.InvalidRequest("proxy service url is not allowed (it must be https on a public address)")
		}
	}
	return &proxyTarget{DID: did, ServiceID: id, URL: u.Scheme + "://" + u.Host}, nil
}

// configuredService is the configured service named by did#id, if any.
func (p *Proxy) configuredService(did, id string) *Service {
	for _, c := range []struct {
		svc *Service
		id  string
	}{{p.cfg.AppView, serviceIDAppView}, {p.cfg.ModService, serviceIDLabeler}, {p.cfg.ReportService, serviceIDLabeler}} {
		if c.svc != nil && c.svc.DID == did && c.id == id {
			return c.svc
		}
	}
	return nil
}

// Handle is the router's fallback: every /xrpc/<nsid> not served here.
func (p *Proxy) Handle(c echo.Context) error {
	nsid := xrpc.MethodNSID(c)
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return xrpc.InvalidRequest("XRPC requests only supports GET and POST")
	}
	if IsProtectedMethod(nsid) {
		return xrpc.InvalidToken("Bad token method")
	}
	if !p.hasTarget(c, nsid) {
		return noServiceError(nsid)
	}
	caller, err := p.Authenticate(c)
	if err != nil {
		return err
	}
	setPrivateHeaders(c)
	if caller.AppPassword && IsPrivilegedMethod(nsid) {
		return xrpc.InvalidToken("Bad token method")
	}
	if err := p.authorizeRPC(c, caller, nsid); err != nil {
		return err
	}
	return p.Call(c, caller.DID, nsid)
}

// Audience is the service a call goes to, as an OAuth rpc: permission names it ("<did>#<service id>"): the
// atproto-proxy header, or the namespace's default service. It needs no network request.
func (p *Proxy) Audience(c echo.Context, nsid string) (string, error) {
	if h := c.Request().Header.Get("atproto-proxy"); h != "" {
		did, id, err := parseProxyHeader(h)
		if err != nil {
			return "", err
		}
		return did + "#" + id, nil
	}
	svc, id := p.defaultService(nsid)
	if svc == nil {
		return "", noServiceError(nsid)
	}
	return svc.DID + "#" + id, nil
}

// authorizeRPC checks an OAuth caller's rpc: permission for the methods (default: the call's own) at the
// call's service, before anything is resolved or forwarded.
func (p *Proxy) authorizeRPC(c echo.Context, caller Caller, lxms ...string) error {
	if caller.RequireRPC == nil {
		return nil
	}
	nsid := xrpc.MethodNSID(c)
	aud, err := p.Audience(c, nsid)
	if err != nil {
		return err
	}
	if len(lxms) == 0 {
		lxms = []string{nsid}
	}
	return caller.requireRPC(aud, lxms...)
}

// authorizeRoute is authorizeRPC for the routes served here, whose caller the route's middleware set.
func (p *Proxy) authorizeRoute(c echo.Context, lxms ...string) error {
	if p.Deps.Caller == nil {
		return nil
	}
	return p.authorizeRPC(c, p.Deps.Caller(c), lxms...)
}

// Call forwards the current request for the account did (authenticated) and streams the answer back.
func (p *Proxy) Call(c echo.Context, did syntax.DID, nsid string) error {
	up, _, err := p.forwardCall(c, did, nsid, false)
	if err != nil {
		return err
	}
	defer up.Close()
	return p.streamUpstream(c, up)
}

// forwardCall resolves the call's target and forwards the current request there for the account did, with a
// token for the target (lxm nsid): what a proxied call and a read-after-write call share.
func (p *Proxy) forwardCall(c echo.Context, did syntax.DID, nsid string, decoded bool) (*upstream, *accountstore.Account, error) {
	ctx := c.Request().Context()
	target, err := p.resolveTarget(ctx, c.Request().Header.Get("atproto-proxy"), nsid)
	if err != nil {
		return nil, nil, err
	}
	acct, err := p.Accounts.ByDID(ctx, did)
	if err != nil {
		return nil, nil, err
	}
	up, err := p.forward(c, target, acct, target.DID, nsid, decoded)
	if err != nil {
		return nil, nil, err
	}
	return up, acct, nil
}

func setPrivateHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "private")
	h.Add("Vary", "Authorization")
}

// Request headers forwarded to the service (besides x-atproto-*), and response headers returned from it.
var (
	forwardRequestHeaders  = []string{"Accept-Language", "Atproto-Accept-Labelers", "X-Bsky-Topics"}
	forwardResponseHeaders = []string{"Atproto-Repo-Rev", "Atproto-Content-Labelers", "Retry-After"}
	contentResponseHeaders = []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Language"}
)

var errUpstreamTimeout = errors.New("upstream timed out")

// upstream is a service's response whose body is being read under the proxy's timeouts.
type upstream struct {
	*http.Response
	body   io.Reader // Response.Body with the pause timeout
	cancel context.CancelCauseFunc
	idle   *time.Timer
	ctx    context.Context
}

func (u *upstream) Close() {
	u.idle.Stop()
	u.Response.Body.Close()
	u.cancel(nil)
}

// timedOut reports whether a failure came from the proxy's own timeouts.
func (u *upstream) timedOut() bool { return context.Cause(u.ctx) == errUpstreamTimeout }

// idleReader re-arms the pause timer after every read.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.timer.Reset(r.d)
	return n, err
}

// forward sends the current request to target with a service token (aud, lxm) for acct. decoded asks the
// service for a body the PDS can read (Go's transport negotiates gzip and decodes it); otherwise the client's
// Accept-Encoding is passed on and the body is relayed untouched. Errors are XRPC errors.
func (p *Proxy) forward(c echo.Context, target *proxyTarget, acct *accountstore.Account, aud, lxm string, decoded bool) (*upstream, error) {
	in := c.Request()
	token, err := p.ServiceToken(acct, aud, lxm, time.Time{})
	if err != nil {
		return nil, err
	}
	limits := p.cfg.Limits
	var body io.Reader
	if in.Method == http.MethodPost && in.Body != nil {
		if in.ContentLength > limits.MaxResponseSize {
			return nil, xrpc.PayloadTooLarge("Request entity too large")
		}
		body = http.MaxBytesReader(c.Response(), in.Body, limits.MaxResponseSize)
	}
	ctx, cancel := context.WithCancelCause(in.Context())
	out, err := http.NewRequestWithContext(ctx, in.Method, target.URL+in.URL.EscapedPath(), body)
	if err != nil {
		cancel(nil)
		return nil, xrpc.InvalidRequest("invalid proxy target")
	}
	out.URL.RawQuery = in.URL.RawQuery
	if body != nil {
		out.ContentLength = in.ContentLength
		for _, h := range []string{"Content-Type", "Content-Encoding"} {
			if v := in.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
	}
	for _, h := range forwardRequestHeaders {
		if v := in.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	for name, v := range in.Header {
		if strings.HasPrefix(strings.ToLower(name), "x-atproto-") {
			out.Header[name] = v
		}
	}
	if !decoded {
		ae := in.Header.Get("Accept-Encoding")
		if ae == "" {
			ae = "identity"
		}
		out.Header.Set("Accept-Encoding", ae)
	}
	out.Header.Set("Authorization", "Bearer "+token)
	out.Header.Set("User-Agent", p.cfg.UserAgent)

	headers := time.AfterFunc(limits.HeadersTimeout, func() { cancel(errUpstreamTimeout) })
	resp, err := p.client.Do(out)
	headers.Stop()
	if err != nil {
		cause := context.Cause(ctx)
		cancel(nil)
		var mbe *http.MaxBytesError
		switch {
		case cause == errUpstreamTimeout:
			return nil, xrpc.UpstreamTimeout("Upstream service timed out")
		case in.Context().Err() != nil:
			return nil, in.Context().Err() // the client went away
		case errors.Is(err, ssrf.ErrForbidden):
			return nil, xrpc.InvalidRequest("proxy service url is not allowed (it must resolve to a public address)")
		case errors.As(err, &mbe):
			return nil, xrpc.PayloadTooLarge("Request entity too large")
		}
		p.Log.WarnContext(in.Context(), "proxy: upstream unreachable", "method", lxm, "service", target.DID, "err", err)
		return nil, xrpc.UpstreamFailure("Upstream service unreachable")
	}
	u := &upstream{Response: resp, cancel: cancel, ctx: ctx}
	u.idle = time.AfterFunc(limits.BodyTimeout, func() { cancel(errUpstreamTimeout) })
	u.body = &idleReader{r: resp.Body, timer: u.idle, d: limits.BodyTimeout}
	return u, nil
}

// upstreamError turns a service's error response into the PDS's answer: 4xx as the service said it (status,
// error name, message), 5xx as 502 UpstreamFailure; the rev, labelers and retry-after headers are kept.
func (p *Proxy) upstreamError(u *upstream) *xrpc.Error {
	var payload struct {
		Error   any `json:"error"`
		Message any `json:"message"`
	}
	if isJSONContentType(u.Header.Get("Content-Type")) {
		raw, err := io.ReadAll(io.LimitReader(u.body, 256<<10))
		if err == nil {
			json.Unmarshal(raw, &payload)
		}
	}
	name, _ := payload.Error.(string)
	msg, _ := payload.Message.(string)
	e := &xrpc.Error{Status: u.StatusCode, Name: name, Message: msg}
	if u.StatusCode >= 500 {
		e.Status, e.Name = http.StatusBadGateway, xrpc.NameUpstreamFailure
		if msg == "" {
			e.Message = "Upstream service failure"
		}
	}
	for _, h := range forwardResponseHeaders {
		if v := u.Header.Values(h); len(v) > 0 {
			e.WithHeader(h, strings.Join(v, ","))
		}
	}
	return e
}

// isJSONContentType: application/json or application/<something>+json; an absent type counts as JSON.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

func copyUpstreamHeaders(dst http.Header, src http.Header, content bool) {
	if content {
		for _, h := range contentResponseHeaders {
			if v := src.Get(h); v != "" {
				dst.Set(h, v)
			}
		}
	}
	for _, h := range forwardResponseHeaders {
		if v := src.Values(h); len(v) > 0 {
			dst.Set(h, strings.Join(v, ","))
		}
	}
}

// streamUpstream relays a service's answer. An error status becomes an XRPC error; a body over the size cap
// is refused when its length is announced, and cut (connection aborted, so the client cannot take a truncated
// body for a whole one) when it is not.
func (p *Proxy) streamUpstream(c echo.Context, u *upstream) error {
	if u.StatusCode >= 400 {
		return p.upstreamError(u)
	}
	max := p.cfg.Limits.MaxResponseSize
	if u.ContentLength > max {
		return xrpc.UpstreamFailure("Upstream response too large")
	}
	res := c.Response()
	copyUpstreamHeaders(res.Header(), u.Header, true)
	if u.Uncompressed { // Go's transport decoded a gzip body: its length and encoding are gone
		res.Header().Del("Content-Length")
		res.Header().Del("Content-Encoding")
	}
	res.WriteHeader(u.StatusCode)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	n, err := io.Copy(res, io.LimitReader(u.body, max+1))
	if err == nil && n <= max {
		return nil
	}
	switch {
	case err == nil:
		p.Log.Warn("proxy: upstream response over the size cap; aborted", "path", c.Request().URL.Path, "max", max)
	case u.timedOut():
		p.Log.Warn("proxy: upstream body stalled; aborted", "path", c.Request().URL.Path)
	case c.Request().Context().Err() == nil:
		p.Log.Warn("proxy: reading upstream body", "path", c.Request().URL.Path, "err", err)
	}
	panic(http.ErrAbortHandler) // net/http closes the connection without ending the body
}

// readUpstreamBody reads a whole (decoded) body within the size cap.
func (p *Proxy) readUpstreamBody(u *upstream) ([]byte, error) {
	max := p.cfg.Limits.MaxResponseSize
	if u.ContentLength > max {
		return nil, xrpc.UpstreamFailure("Upstream response too large")
	}
	b, err := io.ReadAll(io.LimitReader(u.body, max+1))
	if err != nil {
		if u.timedOut() {
			return nil, xrpc.UpstreamTimeout("Upstream service timed out")
		}
		return nil, xrpc.UpstreamFailure("Upstream service failure")
	}
	if int64(len(b)) > max {
		return nil, xrpc.UpstreamFailure("Upstream response too large")
	}
	return b, nil
}

// appViewGet is a GET to the configured AppView made by the PDS itself on acct's behalf (read-after-write
// embeds, feed generator lookups). token == false sends no Authorization.
func (p *Proxy) appViewGet(ctx context.Context, acct *accountstore.Account, nsid string, params url.Values, token bool) (map[string]any, error) {
	av := p.cfg.AppView
	if av == nil {
		return nil, errors.New("no AppView configured")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Limits.HeadersTimeout+p.cfg.Limits.BodyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, av.URL+"/xrpc/"+nsid+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	if token {
		jwt, err := p.ServiceToken(acct, av.DID, nsid, time.Time{})
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.Limits.MaxResponseSize+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &appViewError{status: resp.StatusCode, body: raw}
	}
	if int64(len(raw)) > p.cfg.Limits.MaxResponseSize {
		return nil, errors.New("AppView response too large")
	}
	return decodeJSONObject(raw)
}

type appViewError struct {
	status int
	body   []byte
}

func (e *appViewError) Error() string {
	return "AppView answered " + http.StatusText(e.status) + ": " + string(e.body[:min(len(e.body), 200)])
}

// decodeJSONObject decodes a JSON object keeping numbers as they were written.
func decodeJSONObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}
