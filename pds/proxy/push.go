package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/xrpc"
)

// serviceIDNotif is the DID-document service id of a push notification service.
const serviceIDNotif = "bsky_notif"

// Push serves app.bsky.notification.registerPush and unregisterPush as the reference does: the call goes to
// the service the body's serviceDid names (its #bsky_notif endpoint), with a token whose aud is that DID,
// not to the default AppView; an app's push service may be a different one. When serviceDid is the AppView's,
// the configured AppView is used. Without an AppView configured the reference does not serve the method, so
// neither does this (the fallback's 501).
func (p *Proxy) Push(c echo.Context) error {
	av := p.cfg.AppView
	if av == nil {
		return p.Handle(c)
	}
	nsid := xrpc.MethodNSID(c)
	// An OAuth grant needs rpc: for the method at the AppView, whichever service gets it (the reference's rule).
	if err := p.authorizeRoute(c, nsid); err != nil {
		return err
	}
	raw, err := xrpc.ReadRawJSON(c, xrpc.JSONBodyLimit)
	if err != nil {
		return err
	}
	var in struct {
		ServiceDID string `json:"serviceDid"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return xrpc.InvalidRequest("Invalid JSON body")
	}
	did, err := syntax.ParseDID(in.ServiceDID)
	if err != nil {
		return xrpc.InvalidRequest("serviceDid must be a valid did")
	}
	ctx := c.Request().Context()
	target := &proxyTarget{DID: did.String(), ServiceID: serviceIDNotif, URL: av.URL}
	if did.String() != av.DID {
		if target.URL, err = p.notifEndpoint(c, did); err != nil {
			return err
		}
	}
	acct, err := p.Accounts.ByDID(ctx, p.CallerDID(c))
	if err != nil {
		return err
	}
	// The body was read (and validated) here: forward the same bytes.
	c.Request().Body = io.NopCloser(bytes.NewReader(raw))
	c.Request().ContentLength = int64(len(raw))
	up, err := p.forward(c, target, acct, target.DID, nsid, true)
	if err != nil {
		return err
	}
	defer up.Close()
	if up.StatusCode >= 400 {
		return p.upstreamError(up)
	}
	return c.NoContent(http.StatusOK)
}

// notifEndpoint is the #bsky_notif endpoint in did's document (https on a public address unless SSRF
// protection is off).
func (p *Proxy) notifEndpoint(c echo.Context, did syntax.DID) (string, error) {
	ctx := c.Request().Context()
	ident, err := p.ResolveDID(ctx, did)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", xrpc.InvalidRequest("could not resolve did document: %s", did)
	}
	endpoint := ident.GetServiceEndpoint(serviceIDNotif)
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", xrpc.InvalidRequest("invalid notification service details in did document: %s", did)
	}
	if !p.cfg.DisableSSRFProtection {
		if err := ssrf.CheckURL(endpoint, false); err != nil {
			return "", xrpc.InvalidRequest("notification service url is not allowed (it must be https on a public address)")
		}
	}
	return u.Scheme + "://" + u.Host, nil
}
