package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/xrpc"
)

// app.bsky methods the proxy serves itself or patches.

// ProxiedElsewhere reports whether the atproto-proxy header names a service other than the configured
// AppView: preferences then live there, and the call is forwarded.
func (p *Proxy) ProxiedElsewhere(c echo.Context) bool {
	h := c.Request().Header.Get("atproto-proxy")
	if h == "" {
		return false
	}
	av := p.cfg.AppView
	return av == nil || h != av.DID+"#"+serviceIDAppView
}

// GetFeed (app.bsky.feed.getFeed) finds the feed generator's DID from its record (through the AppView) and forwards the call to
// the AppView with a token for that generator (lxm getFeedSkeleton), which the AppView passes on.
func (p *Proxy) GetFeed(c echo.Context) error {
	did := p.CallerDID(c)
	nsid := xrpc.MethodNSID(c)
	// The reference asks for both methods at the service the call is routed to (not the generator's aud).
	if err := p.authorizeRoute(c, nsid, "app.bsky.feed.getFeedSkeleton"); err != nil {
		return err
	}
	if p.cfg.AppView == nil {
		return p.Call(c, did, nsid) // no AppView to read the generator record from: a plain proxied call
	}
	ctx := c.Request().Context()
	feed, err := syntax.ParseATURI(xrpc.ParamString(c, "feed"))
	if err != nil {
		return xrpc.InvalidRequest("feed must be a valid at-uri")
	}
	acct, err := p.Accounts.ByDID(ctx, did)
	if err != nil {
		return err
	}
	rec, err := p.appViewGet(ctx, acct, "com.atproto.repo.getRecord", url.Values{
		"repo": {feed.Authority().String()}, "collection": {feed.Collection().String()}, "rkey": {feed.RecordKey().String()},
	}, false)
	if err != nil {
		var ae *appViewError
		if errors.As(err, &ae) && ae.status < 500 {
			e := &xrpc.Error{Status: ae.status}
			var payload struct{ Error, Message string }
			if json.Unmarshal(ae.body, &payload) == nil {
				e.Name, e.Message = payload.Error, payload.Message
			}
			return e
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.Log.Warn("getFeed: reading the feed generator record", "feed", feed.String(), "err", err)
		return xrpc.UpstreamFailure("could not read the feed generator record")
	}
	value, _ := rec["value"].(map[string]any)
	feedDID, _ := value["did"].(string)
	if _, err := syntax.ParseDID(feedDID); err != nil {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameUnknownFeed, "could not resolve feed did")
	}
	target, err := p.resolveTarget(ctx, c.Request().Header.Get("atproto-proxy"), nsid)
	if err != nil {
		return err
	}
	up, err := p.forward(c, target, acct, feedDID, "app.bsky.feed.getFeedSkeleton", false)
	if err != nil {
		return err
	}
	defer up.Close()
	return p.streamUpstream(c, up)
}
