package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Read-after-write: the AppView learns of an account's writes from the firehose, a moment after they are
// made. On the account's own views (profile, timeline, author feed, likes, threads) the AppView reports with
// `atproto-repo-rev` how far it has read the repo; when it is behind, the PDS adds the account's newer posts
// and profile to the answer, as the reference PDS does, and says by how much with `Atproto-Upstream-Lag` (ms).

const (
	nsidPost    = "app.bsky.feed.post"
	nsidProfile = "app.bsky.actor.profile"

	typeThreadViewPost = "app.bsky.feed.defs#threadViewPost"
	typeReasonRepost   = "app.bsky.feed.defs#reasonRepost"

	// localRecordsLimit: at most this many newer records are looked at (the reference's 10).
	localRecordsLimit = 10
)

// localRecord is one of the account's records the AppView has not seen yet.
type localRecord struct {
	URI       string
	CID       string
	IndexedAt string // when this PDS stored it: the commit rev's time
	Record    map[string]any
	at        time.Time
}

type localRecords struct {
	count   int
	profile *localRecord // app.bsky.actor.profile/self
	posts   []localRecord
}

// lag is how long ago the oldest of the records was written.
func (l *localRecords) lag() (time.Duration, bool) {
	var oldest time.Time
	if l.profile != nil {
		oldest = l.profile.at
	}
	for _, p := range l.posts {
		if oldest.IsZero() || p.at.Before(oldest) {
			oldest = p.at
		}
	}
	if oldest.IsZero() {
		return 0, false
	}
	return time.Since(oldest), true
}

// localRecordsSince loads the account's posts and profile written after rev (nothing when the repo is not
// ahead of rev, the common case: one small query).
func (p *Proxy) localRecordsSince(ctx context.Context, did syntax.DID, rev string) (*localRecords, error) {
	out := &localRecords{}
	r, err := p.Repos.Repo(ctx, did)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	head, err := r.Head(ctx)
	if err != nil {
		return nil, err
	}
	if head.Rev <= rev {
		return out, nil
	}
	recs, err := r.RecordsSince(ctx, rev, localRecordsLimit, nsidProfile, nsidPost)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		out.count++
		if rec.Collection == nsidProfile && rec.RKey != "self" {
			continue
		}
		raw, err := xrpc.RecordJSON(rec.Value)
		if err != nil {
			return nil, err
		}
		val, err := decodeJSONObject(raw)
		if err != nil {
			return nil, err
		}
		lr := localRecord{
			URI:    repo.RecordURI(did, rec.Collection, rec.RKey),
			CID:    rec.CID.String(),
			Record: val,
		}
		if tid, err := syntax.ParseTID(rec.Rev); err == nil {
			lr.at = tid.Time()
		} else {
			lr.at = time.Now()
		}
		lr.IndexedAt = lr.at.UTC().Format("2006-01-02T15:04:05.000Z")
		if rec.Collection == nsidProfile {
			out.profile = &lr
		} else {
			out.posts = append(out.posts, lr)
		}
	}
	return out, nil
}

// munger rewrites an AppView answer with the account's newer records.
type munger func(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error)

// The read-after-write methods (for the caller authenticated by the route): the AppView's answer, patched.
func (p *Proxy) GetProfile(c echo.Context) error    { return p.readAfterWrite(c, mungeGetProfile) }
func (p *Proxy) GetProfiles(c echo.Context) error   { return p.readAfterWrite(c, mungeGetProfiles) }
func (p *Proxy) GetTimeline(c echo.Context) error   { return p.readAfterWrite(c, mungeGetTimeline) }
func (p *Proxy) GetAuthorFeed(c echo.Context) error { return p.readAfterWrite(c, mungeGetAuthorFeed) }
func (p *Proxy) GetActorLikes(c echo.Context) error { return p.readAfterWrite(c, mungeGetActorLikes) }
func (p *Proxy) GetPostThread(c echo.Context) error { return p.readAfterWrite(c, mungeGetPostThread) }

// readAfterWrite proxies one of the read-after-write methods and patches its answer with munge.
func (p *Proxy) readAfterWrite(c echo.Context, munge munger) error {
	ctx := c.Request().Context()
	nsid := xrpc.MethodNSID(c)
	if err := p.authorizeRoute(c, nsid); err != nil {
		return err
	}
	up, acct, err := p.forwardCall(c, p.CallerDID(c), nsid, true)
	if err != nil {
		return err
	}
	defer up.Close()
	if up.StatusCode >= 400 {
		uerr := p.upstreamError(up)
		if nsid == "app.bsky.feed.getPostThread" && uerr.Name == xrpc.NameNotFound {
			if rev := up.Header.Get("Atproto-Repo-Rev"); rev != "" {
				if done, err := p.threadNotFoundAfterWrite(c, acct, rev); done || err != nil {
					return err
				}
			}
		}
		return uerr
	}
	rev := up.Header.Get("Atproto-Repo-Rev")
	if rev == "" || up.StatusCode != http.StatusOK || c.Request().Method == http.MethodHead ||
		!isJSONContentType(up.Header.Get("Content-Type")) {
		return p.streamUpstream(c, up)
	}
	local, err := p.localRecordsSince(ctx, acct.DID, rev)
	if err != nil {
		p.Log.Warn("read-after-write: loading local records", "did", acct.DID, "err", err)
		return p.streamUpstream(c, up)
	}
	if local.count == 0 {
		return p.streamUpstream(c, up)
	}
	raw, err := p.readUpstreamBody(up)
	if err != nil {
		return err
	}
	res := c.Response()
	copyUpstreamHeaders(res.Header(), up.Header, false)
	data, err := decodeJSONObject(raw)
	if err == nil {
		lv := &localViewer{p: p, ctx: ctx, acct: acct}
		data, err = munge(lv, data, local)
	}
	if err != nil {
		// The AppView's answer stands as it is; the lag header says nothing was added.
		p.Log.Info("read-after-write: answer left as the AppView gave it", "method", nsid, "err", err)
		return c.Blob(http.StatusOK, up.Header.Get("Content-Type"), raw)
	}
	if lag, ok := local.lag(); ok {
		res.Header().Set("Atproto-Upstream-Lag", strconv.FormatInt(lag.Milliseconds(), 10))
	}
	return c.JSON(http.StatusOK, data)
}

// localViewer builds views of the account's own records as the AppView would (counts are zero: nobody can
// have liked a post the AppView has not seen).
type localViewer struct {
	p    *Proxy
	ctx  context.Context
	acct *accountstore.Account

	profileLoaded bool
	profile       map[string]any // current profile record, nil if none
}

// imageURL is the AppView's CDN URL when a pattern is configured, else the blob on this PDS.
func (lv *localViewer) imageURL(kind, cid string) string {
	if av := lv.p.cfg.AppView; av != nil && av.CDNURLPattern != "" {
		out := av.CDNURLPattern
		for _, arg := range []string{kind, lv.acct.DID.String(), cid} {
			out = strings.Replace(out, "%s", arg, 1)
		}
		return out
	}
	return lv.p.cfg.PublicURL + "/xrpc/com.atproto.sync.getBlob?did=" + url.QueryEscape(lv.acct.DID.String()) + "&cid=" + url.QueryEscape(cid)
}

// blobCID reads a blob's CID (current {"ref": {"$link"}} and legacy {"cid"} forms).
func blobCID(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if ref, ok := m["ref"].(map[string]any); ok {
		if l, ok := ref["$link"].(string); ok {
			return l
		}
	}
	if c, ok := m["cid"].(string); ok {
		return c
	}
	return ""
}

func (lv *localViewer) currentProfile() map[string]any {
	if !lv.profileLoaded {
		lv.profileLoaded = true
		r, err := lv.p.Repos.Repo(lv.ctx, lv.acct.DID)
		if err != nil {
			return nil
		}
		defer r.Release()
		if _, data, err := r.GetRecord(lv.ctx, nsidProfile, "self"); err == nil {
			if raw, err := xrpc.RecordJSON(data); err == nil {
				lv.profile, _ = decodeJSONObject(raw)
			}
		}
	}
	return lv.profile
}

// setOrDelete sets m[k] = v, or removes k when v is empty (the view then has no such field).
func setOrDelete(m map[string]any, k string, v any) {
	if v == nil || v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}

func (lv *localViewer) updateProfileViewBasic(view, rec map[string]any) map[string]any {
	out := shallowCopy(view)
	setOrDelete(out, "displayName", rec["displayName"])
	avatar := ""
	if c := blobCID(rec["avatar"]); c != "" {
		avatar = lv.imageURL("avatar", c)
	}
	setOrDelete(out, "avatar", avatar)
	return out
}

func (lv *localViewer) updateProfileView(view, rec map[string]any) map[string]any {
	out := lv.updateProfileViewBasic(view, rec)
	setOrDelete(out, "description", rec["description"])
	return out
}

func (lv *localViewer) updateProfileDetailed(view, rec map[string]any) map[string]any {
	out := lv.updateProfileView(view, rec)
	banner := ""
	if c := blobCID(rec["banner"]); c != "" {
		banner = lv.imageURL("banner", c)
	}
	setOrDelete(out, "banner", banner)
	return out
}

func (lv *localViewer) profileBasic() map[string]any {
	handle := lv.acct.Handle
	if handle == "" {
		handle = syntax.HandleInvalid.String()
	}
	out := map[string]any{"did": lv.acct.DID.String(), "handle": handle}
	if p := lv.currentProfile(); p != nil {
		setOrDelete(out, "displayName", p["displayName"])
		if c := blobCID(p["avatar"]); c != "" {
			out["avatar"] = lv.imageURL("avatar", c)
		}
	}
	return out
}

// postView is an app.bsky.feed.defs#postView of one of the account's new posts.
func (lv *localViewer) postView(p localRecord) map[string]any {
	out := map[string]any{
		"uri":         p.URI,
		"cid":         p.CID,
		"author":      lv.profileBasic(),
		"record":      p.Record,
		"likeCount":   0,
		"replyCount":  0,
		"repostCount": 0,
		"quoteCount":  0,
		"indexedAt":   p.IndexedAt,
	}
	if embed, ok := p.Record["embed"].(map[string]any); ok {
		if view := lv.embedView(embed); view != nil {
			out["embed"] = view
		}
	}
	return out
}

func (lv *localViewer) embedView(embed map[string]any) map[string]any {
	switch embed["$type"] {
	case "app.bsky.embed.images":
		return lv.imagesView(embed)
	case "app.bsky.embed.external":
		return lv.externalView(embed)
	case "app.bsky.embed.record":
		return lv.recordEmbedView(embed)
	case "app.bsky.embed.recordWithMedia":
		var media map[string]any
		if m, ok := embed["media"].(map[string]any); ok {
			switch m["$type"] {
			case "app.bsky.embed.images":
				media = lv.imagesView(m)
			case "app.bsky.embed.external":
				media = lv.externalView(m)
			}
		}
		rec, _ := embed["record"].(map[string]any)
		if media == nil || rec == nil {
			return nil
		}
		return map[string]any{"$type": "app.bsky.embed.recordWithMedia#view", "record": lv.recordEmbedView(rec), "media": media}
	}
	return nil
}

func (lv *localViewer) imagesView(embed map[string]any) map[string]any {
	images, _ := embed["images"].([]any)
	views := []any{}
	for _, it := range images {
		img, ok := it.(map[string]any)
		if !ok {
			continue
		}
		c := blobCID(img["image"])
		v := map[string]any{
			"thumb":    lv.imageURL("feed_thumbnail", c),
			"fullsize": lv.imageURL("feed_fullsize", c),
			"alt":      img["alt"],
		}
		if ar, ok := img["aspectRatio"]; ok {
			v["aspectRatio"] = ar
		}
		views = append(views, v)
	}
	return map[string]any{"$type": "app.bsky.embed.images#view", "images": views}
}

func (lv *localViewer) externalView(embed map[string]any) map[string]any {
	ext, _ := embed["external"].(map[string]any)
	if ext == nil {
		return nil
	}
	v := map[string]any{"uri": ext["uri"], "title": ext["title"], "description": ext["description"]}
	if c := blobCID(ext["thumb"]); c != "" {
		v["thumb"] = lv.imageURL("feed_thumbnail", c)
	}
	return map[string]any{"$type": "app.bsky.embed.external#view", "external": v}
}

// recordEmbedView asks the AppView for the quoted post, feed generator or list; what it cannot get is shown
// as not found.
func (lv *localViewer) recordEmbedView(embed map[string]any) map[string]any {
	ref, _ := embed["record"].(map[string]any)
	uri, _ := ref["uri"].(string)
	var view map[string]any
	if at, err := syntax.ParseATURI(uri); err == nil && lv.p.cfg.AppView != nil {
		switch at.Collection().String() {
		case nsidPost:
			if res, err := lv.p.appViewGet(lv.ctx, lv.acct, "app.bsky.feed.getPosts", url.Values{"uris": {uri}}, true); err == nil {
				if posts, _ := res["posts"].([]any); len(posts) > 0 {
					if p, ok := posts[0].(map[string]any); ok {
						view = map[string]any{"$type": "app.bsky.embed.record#viewRecord", "uri": p["uri"], "cid": p["cid"],
							"author": p["author"], "value": p["record"], "indexedAt": p["indexedAt"]}
						if l, ok := p["labels"]; ok {
							view["labels"] = l
						}
						if e, ok := p["embed"]; ok && e != nil {
							view["embeds"] = []any{e}
						}
					}
				}
			}
		case "app.bsky.feed.generator":
			if res, err := lv.p.appViewGet(lv.ctx, lv.acct, "app.bsky.feed.getFeedGenerator", url.Values{"feed": {uri}}, true); err == nil {
				if g, ok := res["view"].(map[string]any); ok {
					view = viewWithType(g, "app.bsky.feed.defs#generatorView")
				}
			}
		case "app.bsky.graph.list":
			if res, err := lv.p.appViewGet(lv.ctx, lv.acct, "app.bsky.graph.getList", url.Values{"list": {uri}}, true); err == nil {
				if l, ok := res["list"].(map[string]any); ok {
					view = viewWithType(l, "app.bsky.graph.defs#listView")
				}
			}
		}
	}
	if view == nil {
		view = map[string]any{"$type": "app.bsky.embed.record#viewNotFound", "uri": uri, "notFound": true}
	}
	return map[string]any{"$type": "app.bsky.embed.record#view", "record": view}
}

func viewWithType(m map[string]any, typ string) map[string]any {
	out := shallowCopy(m)
	out["$type"] = typ
	return out
}

func shallowCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// feedItem returns item.post as a map, and its indexedAt.
func feedItemPost(item any) (map[string]any, string, bool) {
	m, ok := item.(map[string]any)
	if !ok {
		return nil, "", false
	}
	p, ok := m["post"].(map[string]any)
	if !ok {
		return nil, "", false
	}
	at, _ := p["indexedAt"].(string)
	return p, at, true
}

// insertPostsInFeed puts the new posts into a feed sorted newest first, at their place by indexedAt; posts
// older than the feed's last item belong to a later page and are left out.
func (lv *localViewer) insertPostsInFeed(feed []any, posts []localRecord) ([]any, error) {
	if len(posts) == 0 {
		return feed, nil
	}
	lastTime := "1970-01-01T00:00:00.000Z"
	if len(feed) > 0 {
		_, at, ok := feedItemPost(feed[len(feed)-1])
		if !ok {
			return nil, fmt.Errorf("unexpected feed item")
		}
		lastTime = at
	}
	for i := len(posts) - 1; i >= 0; i-- { // newest first
		p := posts[i]
		if p.IndexedAt <= lastTime {
			continue
		}
		item := map[string]any{"post": lv.postView(p)}
		idx := -1
		for j, it := range feed {
			if _, at, ok := feedItemPost(it); ok && at < p.IndexedAt {
				idx = j
				break
			}
		}
		if idx < 0 {
			feed = append(feed, item)
		} else {
			feed = append(feed[:idx], append([]any{item}, feed[idx:]...)...)
		}
	}
	return feed, nil
}

// updateAuthorsInFeed refreshes the account's own name and avatar on its posts in a feed.
func (lv *localViewer) updateAuthorsInFeed(feed []any, profile *localRecord) []any {
	if profile == nil {
		return feed
	}
	out := make([]any, len(feed))
	for i, item := range feed {
		out[i] = item
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		p, _, ok := feedItemPost(item)
		if !ok {
			continue
		}
		author, _ := p["author"].(map[string]any)
		if author == nil || author["did"] != lv.acct.DID.String() {
			continue
		}
		np := shallowCopy(p)
		np["author"] = lv.updateProfileViewBasic(author, profile.Record)
		nm := shallowCopy(m)
		nm["post"] = np
		out[i] = nm
	}
	return out
}

func feedOf(data map[string]any) ([]any, error) {
	feed, ok := data["feed"].([]any)
	if !ok {
		return nil, fmt.Errorf("answer has no feed array")
	}
	return feed, nil
}

func mungeGetProfile(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	if local.profile == nil || data["did"] != lv.acct.DID.String() {
		return data, nil
	}
	return lv.updateProfileDetailed(data, local.profile.Record), nil
}

func mungeGetProfiles(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	if local.profile == nil {
		return data, nil
	}
	profiles, ok := data["profiles"].([]any)
	if !ok {
		return nil, fmt.Errorf("answer has no profiles array")
	}
	out := make([]any, len(profiles))
	for i, p := range profiles {
		out[i] = p
		if m, ok := p.(map[string]any); ok && m["did"] == lv.acct.DID.String() {
			out[i] = lv.updateProfileDetailed(m, local.profile.Record)
		}
	}
	data["profiles"] = out
	return data, nil
}

func mungeGetTimeline(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	feed, err := feedOf(data)
	if err != nil {
		return nil, err
	}
	if data["feed"], err = lv.insertPostsInFeed(feed, local.posts); err != nil {
		return nil, err
	}
	return data, nil
}

func mungeGetAuthorFeed(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	feed, err := feedOf(data)
	if err != nil {
		return nil, err
	}
	if !isUsersFeed(feed, lv.acct.DID.String()) {
		return data, nil
	}
	feed = lv.updateAuthorsInFeed(feed, local.profile)
	if data["feed"], err = lv.insertPostsInFeed(feed, local.posts); err != nil {
		return nil, err
	}
	return data, nil
}

// isUsersFeed: the feed is the account's own (its first item is the account's post or repost).
func isUsersFeed(feed []any, did string) bool {
	if len(feed) == 0 {
		return false
	}
	first, ok := feed[0].(map[string]any)
	if !ok {
		return false
	}
	if reason, ok := first["reason"].(map[string]any); ok {
		by, _ := reason["by"].(map[string]any)
		return reason["$type"] == typeReasonRepost && by != nil && by["did"] == did
	}
	p, _, ok := feedItemPost(first)
	if !ok {
		return false
	}
	author, _ := p["author"].(map[string]any)
	return author != nil && author["did"] == did
}

func mungeGetActorLikes(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	feed, err := feedOf(data)
	if err != nil {
		return nil, err
	}
	data["feed"] = lv.updateAuthorsInFeed(feed, local.profile)
	return data, nil
}

func mungeGetPostThread(lv *localViewer, data map[string]any, local *localRecords) (map[string]any, error) {
	thread, ok := data["thread"].(map[string]any)
	if !ok || thread["$type"] != typeThreadViewPost {
		return data, nil
	}
	data["thread"] = lv.addPostsToThread(thread, local.posts)
	return data, nil
}

func replyURI(rec map[string]any, field string) string {
	reply, _ := rec["reply"].(map[string]any)
	ref, _ := reply[field].(map[string]any)
	u, _ := ref["uri"].(string)
	return u
}

func threadPost(view map[string]any) (uri string, rec map[string]any) {
	post, _ := view["post"].(map[string]any)
	uri, _ = post["uri"].(string)
	rec, _ = post["record"].(map[string]any)
	return uri, rec
}

// addPostsToThread adds the account's new replies under their parents in a thread view.
func (lv *localViewer) addPostsToThread(thread map[string]any, posts []localRecord) map[string]any {
	rootURI, rootRec := threadPost(thread)
	threadRoot := replyURI(rootRec, "root")
	for _, p := range posts {
		r := replyURI(p.Record, "root")
		if r == "" || (r != rootURI && r != threadRoot) {
			continue
		}
		thread = lv.insertIntoReplies(thread, p)
	}
	return thread
}

func (lv *localViewer) insertIntoReplies(view map[string]any, p localRecord) map[string]any {
	uri, _ := threadPost(view)
	if replyURI(p.Record, "parent") == uri {
		out := shallowCopy(view)
		replies, _ := view["replies"].([]any)
		out["replies"] = append([]any{lv.threadViewPost(p)}, replies...)
		return out
	}
	replies, ok := view["replies"].([]any)
	if !ok {
		return view
	}
	nr := make([]any, len(replies))
	for i, r := range replies {
		nr[i] = r
		if m, ok := r.(map[string]any); ok && m["$type"] == typeThreadViewPost {
			nr[i] = lv.insertIntoReplies(m, p)
		}
	}
	out := shallowCopy(view)
	out["replies"] = nr
	return out
}

func (lv *localViewer) threadViewPost(p localRecord) map[string]any {
	return map[string]any{"$type": typeThreadViewPost, "post": lv.postView(p)}
}

// threadNotFoundAfterWrite answers getPostThread for one of the account's own posts that the AppView has not
// seen yet (it said NotFound): the thread is built from the local post, its local replies, and the parents the
// AppView does know. done reports whether it answered.
func (p *Proxy) threadNotFoundAfterWrite(c echo.Context, acct *accountstore.Account, rev string) (done bool, err error) {
	ctx := c.Request().Context()
	at, err := syntax.ParseATURI(xrpc.ParamString(c, "uri"))
	if err != nil {
		return false, nil
	}
	did, _ := at.Authority().AsDID() // "" for a handle, resolved below
	if h, err := at.Authority().AsHandle(); err == nil {
		if a, err := p.Accounts.AccountByHandle(ctx, h.Normalize().String()); err == nil {
			did = a.DID
		}
	}
	if did != acct.DID {
		return false, nil
	}
	uri := repo.RecordURI(did, at.Collection().String(), at.RecordKey().String())
	local, err := p.localRecordsSince(ctx, acct.DID, rev)
	if err != nil {
		p.Log.Warn("read-after-write: loading local records", "did", acct.DID, "err", err)
		return false, nil
	}
	var found *localRecord
	var rest []localRecord
	for i, p := range local.posts {
		if p.URI == uri {
			found = &local.posts[i]
		} else {
			rest = append(rest, p)
		}
	}
	if found == nil {
		return false, nil
	}
	lv := &localViewer{p: p, ctx: ctx, acct: acct}
	thread := lv.addPostsToThread(lv.threadViewPost(*found), rest)
	if parent := replyURI(found.Record, "parent"); parent != "" && p.cfg.AppView != nil {
		params := url.Values{"uri": {parent}, "depth": {"0"}}
		if ph := c.QueryParam("parentHeight"); ph != "" {
			params.Set("parentHeight", ph)
		}
		if res, err := p.appViewGet(ctx, acct, "app.bsky.feed.getPostThread", params, true); err == nil {
			if pt, ok := res["thread"]; ok {
				thread["parent"] = pt
			}
		}
	}
	if lag, ok := local.lag(); ok {
		c.Response().Header().Set("Atproto-Upstream-Lag", strconv.FormatInt(lag.Milliseconds(), 10))
	}
	return true, c.JSON(http.StatusOK, map[string]any{"thread": thread})
}
