package pds_test

import (
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
)

// TestReadAfterWrite: the AppView answers from what it has indexed (it says how far with atproto-repo-rev);
// when the account has written since, the PDS adds its new posts and profile to the account's own views.
func TestReadAfterWrite(t *testing.T) {
	plcURL := testplc.Start(t)
	av := testservice.Start(t, plcURL, appViewDID)
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL": av.URL,
		"PDS_BSKY_APP_VIEW_DID": appViewDID,
	}})
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")

	var mu sync.Mutex
	seen := "" // the AppView's atproto-repo-rev
	setSeen := func(rev string) { mu.Lock(); seen = rev; mu.Unlock() }
	answer := func(w http.ResponseWriter, status int, v any) {
		mu.Lock()
		w.Header().Set("Atproto-Repo-Rev", seen)
		mu.Unlock()
		testservice.WriteJSON(w, status, v)
	}
	createPost := func(rkeyText string, extra map[string]any) (uri, cid, rev string) {
		t.Helper()
		rec := testpds.Post(rkeyText)
		for k, v := range extra {
			rec[k] = v
		}
		r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": rec}, alice.AccessJwt)
		testpds.WantStatus(t, r, 200, "")
		out := r.JSON()
		return out["uri"].(string), out["cid"].(string), out["commit"].(map[string]any)["rev"].(string)
	}
	p0, p0cid, rev0 := createPost("first post", nil)
	setSeen(rev0)

	basic := func(did, handle, name string) map[string]any {
		return map[string]any{"did": did, "handle": handle, "displayName": name}
	}
	postView := func(uri, author, handle, name, at string) map[string]any {
		return map[string]any{"uri": uri, "cid": p0cid, "author": basic(author, handle, name),
			"record": testpds.Post("old"), "indexedAt": at, "likeCount": 5}
	}
	bobPost := "at://" + bob.DID + "/app.bsky.feed.post/3kbob"
	bobItem := map[string]any{"post": postView(bobPost, bob.DID, "bob.test", "Bob", "2020-01-01T00:00:00.000Z")}
	p0Item := map[string]any{"post": postView(p0, alice.DID, "alice.test", "Old Name", "2020-01-02T00:00:00.000Z")}

	av.Handle("app.bsky.feed.getTimeline", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, map[string]any{"feed": []any{bobItem}, "cursor": "tl"})
	})
	profile := func(actor string) map[string]any {
		if actor == alice.DID || actor == "alice.test" {
			return map[string]any{"did": alice.DID, "handle": "alice.test", "displayName": "Old Name", "description": "old", "followersCount": 3}
		}
		return map[string]any{"did": bob.DID, "handle": "bob.test", "displayName": "Bob", "followersCount": 1}
	}
	av.Handle("app.bsky.actor.getProfile", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, profile(r.URL.Query().Get("actor")))
	})
	av.Handle("app.bsky.actor.getProfiles", func(w http.ResponseWriter, r *http.Request) {
		var out []any
		for _, a := range r.URL.Query()["actors"] {
			out = append(out, profile(a))
		}
		answer(w, 200, map[string]any{"profiles": out})
	})
	av.Handle("app.bsky.feed.getAuthorFeed", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("actor") == alice.DID {
			answer(w, 200, map[string]any{"feed": []any{p0Item}})
			return
		}
		answer(w, 200, map[string]any{"feed": []any{bobItem}})
	})
	av.Handle("app.bsky.feed.getActorLikes", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, map[string]any{"feed": []any{p0Item, bobItem}})
	})
	av.Handle("app.bsky.feed.getPostThread", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("uri") == p0 {
			answer(w, 200, map[string]any{"thread": map[string]any{"$type": "app.bsky.feed.defs#threadViewPost",
				"post": postView(p0, alice.DID, "alice.test", "Old Name", "2020-01-02T00:00:00.000Z"), "replies": []any{}}})
			return
		}
		answer(w, 400, map[string]string{"error": "NotFound", "message": "Post not found"})
	})
	av.Handle("app.bsky.feed.getPosts", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, map[string]any{"posts": []any{postView(bobPost, bob.DID, "bob.test", "Bob", "2020-01-01T00:00:00.000Z")}})
	})

	q := func(nsid string, kv ...string) *testpds.Response {
		t.Helper()
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		r := p.Query(nsid, v, alice.AccessJwt)
		testpds.WantStatus(t, r, 200, "")
		return r
	}
	feedURIs := func(r *testpds.Response) []string {
		var out []string
		for _, it := range r.JSON()["feed"].([]any) {
			out = append(out, it.(map[string]any)["post"].(map[string]any)["uri"].(string))
		}
		return out
	}
	lag := func(r *testpds.Response) int {
		t.Helper()
		v := r.Header.Get("Atproto-Upstream-Lag")
		if v == "" {
			return -1
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("Atproto-Upstream-Lag %q", v)
		}
		return n
	}

	// Up to date: the AppView's answer as it is.
	r := q("app.bsky.feed.getTimeline")
	if u := feedURIs(r); len(u) != 1 || u[0] != bobPost || lag(r) != -1 || r.JSON()["cursor"] != "tl" {
		t.Fatalf("up to date timeline: %s", r)
	}

	// Alice writes: a new profile, a post, a reply to her first post, a quote of bob's post.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.putRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.actor.profile",
		"rkey": "self", "record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice New", "description": "new desc"}},
		alice.AccessJwt), 200, "")
	p1, _, _ := createPost("second post", map[string]any{"embed": map[string]any{"$type": "app.bsky.embed.external",
		"external": map[string]any{"uri": "https://example.com/a", "title": "A", "description": "an article"}}})
	ref := map[string]any{"uri": p0, "cid": p0cid}
	p2, _, _ := createPost("a reply", map[string]any{"reply": map[string]any{"root": ref, "parent": ref}})
	p3, _, headRev := createPost("a quote", map[string]any{"embed": map[string]any{"$type": "app.bsky.embed.record",
		"record": map[string]any{"uri": bobPost, "cid": p0cid}}})

	r = q("app.bsky.feed.getTimeline")
	if u := feedURIs(r); len(u) != 4 || u[0] != p3 || u[1] != p2 || u[2] != p1 || u[3] != bobPost {
		t.Fatalf("timeline after writes: %v", u)
	}
	if lag(r) < 0 || r.JSON()["cursor"] != "tl" {
		t.Fatalf("lag header / cursor: %v %s", r.Header, r)
	}
	first := r.JSON()["feed"].([]any)[0].(map[string]any)["post"].(map[string]any)
	author := first["author"].(map[string]any)
	if author["did"] != alice.DID || author["handle"] != "alice.test" || author["displayName"] != "Alice New" ||
		first["likeCount"] != float64(0) || first["record"].(map[string]any)["text"] != "a quote" || first["indexedAt"] == nil {
		t.Fatalf("local post view: %v", first)
	}
	embed := first["embed"].(map[string]any)
	quoted := embed["record"].(map[string]any)
	if embed["$type"] != "app.bsky.embed.record#view" || quoted["$type"] != "app.bsky.embed.record#viewRecord" || quoted["uri"] != bobPost {
		t.Fatalf("quote embed: %v", embed)
	}
	ext := r.JSON()["feed"].([]any)[2].(map[string]any)["post"].(map[string]any)["embed"].(map[string]any)
	if ext["$type"] != "app.bsky.embed.external#view" || ext["external"].(map[string]any)["title"] != "A" {
		t.Fatalf("external embed: %v", ext)
	}
	gotPosts := false
	for _, c := range av.Calls() {
		if c.NSID == "app.bsky.feed.getPosts" && c.Iss == alice.DID && c.Claims["lxm"] == "app.bsky.feed.getPosts" {
			gotPosts = true
		}
	}
	if !gotPosts {
		t.Fatal("the quoted post was not fetched from the AppView with a service token")
	}

	// Own profile patched (AppView-only fields kept); others' untouched.
	r = q("app.bsky.actor.getProfile", "actor", alice.DID)
	if pr := r.JSON(); pr["displayName"] != "Alice New" || pr["description"] != "new desc" || pr["followersCount"] != float64(3) || lag(r) < 0 {
		t.Fatalf("own profile: %s", r)
	}
	if pr := q("app.bsky.actor.getProfile", "actor", bob.DID).JSON(); pr["displayName"] != "Bob" {
		t.Fatalf("bob's profile changed: %v", pr)
	}
	profiles := q("app.bsky.actor.getProfiles", "actors", alice.DID, "actors", bob.DID).JSON()["profiles"].([]any)
	if profiles[0].(map[string]any)["displayName"] != "Alice New" || profiles[1].(map[string]any)["displayName"] != "Bob" {
		t.Fatalf("getProfiles: %v", profiles)
	}

	// Own author feed: new posts in, old post's author refreshed; someone else's feed untouched.
	r = q("app.bsky.feed.getAuthorFeed", "actor", alice.DID)
	if u := feedURIs(r); len(u) != 4 || u[0] != p3 || u[3] != p0 {
		t.Fatalf("author feed: %v", u)
	}
	last := r.JSON()["feed"].([]any)[3].(map[string]any)["post"].(map[string]any)
	if last["author"].(map[string]any)["displayName"] != "Alice New" || last["likeCount"] != float64(5) {
		t.Fatalf("old post in author feed: %v", last)
	}
	if u := feedURIs(q("app.bsky.feed.getAuthorFeed", "actor", bob.DID)); len(u) != 1 {
		t.Fatalf("bob's author feed: %v", u)
	}
	// Likes: authors refreshed, nothing added.
	likes := q("app.bsky.feed.getActorLikes", "actor", alice.DID).JSON()["feed"].([]any)
	if len(likes) != 2 || likes[0].(map[string]any)["post"].(map[string]any)["author"].(map[string]any)["displayName"] != "Alice New" ||
		likes[1].(map[string]any)["post"].(map[string]any)["author"].(map[string]any)["displayName"] != "Bob" {
		t.Fatalf("likes: %v", likes)
	}

	// Thread of the first post: the new reply is under it.
	thread := q("app.bsky.feed.getPostThread", "uri", p0).JSON()["thread"].(map[string]any)
	replies, _ := thread["replies"].([]any)
	if len(replies) != 1 || replies[0].(map[string]any)["post"].(map[string]any)["uri"] != p2 {
		t.Fatalf("thread replies: %v", thread)
	}
	// Thread of the reply, which the AppView has not seen: built here, with its parent from the AppView.
	r = q("app.bsky.feed.getPostThread", "uri", p2)
	thread = r.JSON()["thread"].(map[string]any)
	parent, _ := thread["parent"].(map[string]any)
	if thread["$type"] != "app.bsky.feed.defs#threadViewPost" || thread["post"].(map[string]any)["uri"] != p2 ||
		parent == nil || parent["post"].(map[string]any)["uri"] != p0 || lag(r) < 0 {
		t.Fatalf("local thread: %s", r)
	}
	// A post nobody has: the AppView's NotFound stands.
	testpds.WantStatus(t, p.Query("app.bsky.feed.getPostThread", url.Values{"uri": {"at://" + alice.DID + "/app.bsky.feed.post/3nothere2222"}}, alice.AccessJwt), 400, "NotFound")
	testpds.WantStatus(t, p.Query("app.bsky.feed.getPostThread", url.Values{"uri": {bobPost + "x"}}, alice.AccessJwt), 400, "NotFound")

	// A malformed AppView answer is relayed as it is.
	av.Handle("app.bsky.feed.getActorLikes", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, map[string]any{"feed": "not a list"})
	})
	if got := q("app.bsky.feed.getActorLikes", "actor", alice.DID).JSON(); got["feed"] != "not a list" {
		t.Fatalf("malformed answer: %v", got)
	}

	// The AppView caught up: nothing added. A rev older than the whole repo (not this repo's): nothing either.
	for _, rev := range []string{headRev, "2222222222222"} {
		setSeen(rev)
		r = q("app.bsky.feed.getTimeline")
		if u := feedURIs(r); len(u) != 1 || lag(r) != -1 {
			t.Fatalf("seen %s: %v lag %d", rev, u, lag(r))
		}
	}
}
