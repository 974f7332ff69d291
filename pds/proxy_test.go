package pds_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
)

const appViewDID = "did:web:appview.test"

// TestProxyAppView: calls the PDS does not serve go to the configured AppView (on loopback, allowed because
// the operator configured it, with SSRF protection on), with a service token the AppView verifies against the
// PLC directory, only the headers that matter, and the AppView's answer relayed back.
func TestProxyAppView(t *testing.T) {
	plcURL := testplc.Start(t)
	av := testservice.Start(t, plcURL, appViewDID)
	mod := testservice.Start(t, plcURL, "did:web:mod.test")
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL":       av.URL,
		"PDS_BSKY_APP_VIEW_DID":       appViewDID,
		"PDS_MOD_SERVICE_URL":         mod.URL,
		"PDS_MOD_SERVICE_DID":         mod.DID,
		"PDS_PROXY_HEADERS_TIMEOUT":   "1000",
		"PDS_PROXY_BODY_TIMEOUT":      "500",
		"PDS_PROXY_MAX_RESPONSE_SIZE": strconv.Itoa(1 << 20),
	}})
	if p.Config.DisableSSRFProtection {
		t.Fatal("this test runs with SSRF protection on")
	}
	alice := p.CreateAccount("alice")

	notifs := map[string]any{"notifications": []any{}, "cursor": "c1", "seenAt": "2026-01-01T00:00:00.000Z"}
	av.Handle("app.bsky.notification.listNotifications", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Atproto-Content-Labelers", "did:plc:labeler;redact")
		h.Set("Atproto-Repo-Rev", "3k2a")
		h.Set("Content-Language", "fr")
		h.Set("X-Internal", "secret")
		h.Set("Set-Cookie", "session=1")
		testservice.WriteJSON(w, 200, notifs)
	})

	t.Run("forwarding", func(t *testing.T) {
		r := testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "limit=5&reasons=like&reasons=reply", nil, alice.AccessJwt,
			map[string]string{
				"Accept-Language":         "fr, en;q=0.5",
				"Atproto-Accept-Labelers": "did:plc:labeler;redact",
				"X-Bsky-Topics":           "a,b",
				"X-Atproto-Foo":           "bar",
				"Cookie":                  "mine=1",
				"X-Forwarded-For":         "1.2.3.4",
				"X-Other":                 "no",
			})
		testpds.WantStatus(t, r, 200, "")
		var got map[string]any
		json.Unmarshal(r.Body, &got)
		if got["cursor"] != "c1" || got["seenAt"] != notifs["seenAt"] {
			t.Fatalf("body: %s", r.Body)
		}
		for k, v := range map[string]string{"Atproto-Content-Labelers": "did:plc:labeler;redact", "Atproto-Repo-Rev": "3k2a",
			"Content-Language": "fr", "Cache-Control": "private"} {
			if r.Header.Get(k) != v {
				t.Errorf("response header %s = %q, want %q", k, r.Header.Get(k), v)
			}
		}
		for _, k := range []string{"X-Internal", "Set-Cookie"} {
			if r.Header.Get(k) != "" {
				t.Errorf("response header %s leaked from the service", k)
			}
		}
		c := av.Last(t)
		if c.Iss != alice.DID || c.Claims["aud"] != appViewDID || c.Claims["lxm"] != "app.bsky.notification.listNotifications" {
			t.Fatalf("token claims: iss %s %v", c.Iss, c.Claims)
		}
		iat, exp := testpds.ClaimInt(t, c.Claims, "iat"), testpds.ClaimInt(t, c.Claims, "exp")
		if exp-iat > 60 || exp <= time.Now().Unix() || c.Claims["jti"] == "" || c.Claims["jti"] == nil {
			t.Fatalf("token lifetime/jti: %v", c.Claims)
		}
		if c.Query.Get("limit") != "5" || strings.Join(c.Query["reasons"], ",") != "like,reply" {
			t.Fatalf("query: %v", c.Query)
		}
		for k, v := range map[string]string{"Accept-Language": "fr, en;q=0.5", "Atproto-Accept-Labelers": "did:plc:labeler;redact",
			"X-Bsky-Topics": "a,b", "X-Atproto-Foo": "bar"} {
			if c.Header.Get(k) != v {
				t.Errorf("forwarded header %s = %q, want %q", k, c.Header.Get(k), v)
			}
		}
		for _, k := range []string{"Cookie", "X-Forwarded-For", "X-Other", "Atproto-Proxy"} {
			if c.Header.Get(k) != "" {
				t.Errorf("header %s was forwarded", k)
			}
		}
		if strings.Contains(c.Header.Get("Authorization"), alice.AccessJwt) {
			t.Fatal("the client's session token was forwarded")
		}
		// Every call gets a fresh token.
		testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, alice.AccessJwt, nil)
		if c2 := av.Last(t); c2.Claims["jti"] == c.Claims["jti"] {
			t.Fatal("jti reused")
		}
	})

	t.Run("procedure and HEAD", func(t *testing.T) {
		av.Handle("app.bsky.notification.updateSeen", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
		body := []byte(`{"seenAt":"2026-11-26T05:00:00.000Z"}`)
		r := testpds.Call(t, p, "POST", "app.bsky.notification.updateSeen", "", body, alice.AccessJwt, nil)
		testpds.WantStatus(t, r, 200, "")
		c := av.Last(t)
		if c.Method != "POST" || !bytes.Equal(c.Body, body) || c.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("forwarded procedure: %s %q %q", c.Method, c.Body, c.Header.Get("Content-Type"))
		}
		r = testpds.Call(t, p, "HEAD", "app.bsky.notification.listNotifications", "", nil, alice.AccessJwt, nil)
		if r.Status != 200 || len(r.Body) != 0 || av.Last(t).Method != "HEAD" {
			t.Fatalf("HEAD: %s", r)
		}
		testpds.WantStatus(t, testpds.Call(t, p, "PUT", "app.bsky.notification.updateSeen", "", body, alice.AccessJwt, nil), 400, "InvalidRequest")
		testpds.WantStatus(t, testpds.Call(t, p, "DELETE", "app.bsky.notification.listNotifications", "", nil, alice.AccessJwt, nil), 400, "InvalidRequest")
	})

	t.Run("auth and targets", func(t *testing.T) {
		n := len(av.Calls())
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, "", nil), 401, "AuthMissing")
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, "garbage", nil), 400, "InvalidToken")
		// Not served here, with an AppView: it goes there (TestProxyDefaultAppView), after authentication.
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "com.example.nothing", "", nil, "", nil), 401, "AuthMissing")
		if len(av.Calls()) != n {
			t.Fatal("a refused call reached the AppView")
		}
		// tools.ozone and createReport go to the moderation service (the report service defaults to it).
		mod.Handle("tools.ozone.moderation.queryEvents", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"events": []any{}})
		})
		mod.Handle("com.atproto.moderation.createReport", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"id": 1})
		})
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "tools.ozone.moderation.queryEvents", "", nil, alice.AccessJwt, nil), 200, "")
		if c := mod.Last(t); c.NSID != "tools.ozone.moderation.queryEvents" || c.Claims["aud"] != mod.DID {
			t.Fatalf("ozone call: %+v", c)
		}
		report := []byte(`{"reasonType":"com.atproto.moderation.defs#reasonSpam","subject":{"$type":"com.atproto.admin.defs#repoRef","did":"` + alice.DID + `"}}`)
		testpds.WantStatus(t, testpds.Call(t, p, "POST", "com.atproto.moderation.createReport", "", report, alice.AccessJwt, nil), 200, "")
		if c := mod.Last(t); c.NSID != "com.atproto.moderation.createReport" || c.Claims["lxm"] != "com.atproto.moderation.createReport" {
			t.Fatalf("report call: %+v", c)
		}
	})

	t.Run("protected and privileged methods", func(t *testing.T) {
		n := len(av.Calls())
		// Protected methods are never proxied, whatever their case or target.
		for _, m := range []string{"com.atproto.server.GetSession", "com.atproto.admin.SendEmail", "com.atproto.identity.SignPlcOperation",
			"com.atproto.server.CreateAppPassword"} {
			testpds.WantStatus(t, testpds.Call(t, p, "GET", m, "", nil, alice.AccessJwt, nil), 400, "InvalidToken")
			testpds.WantStatus(t, testpds.Call(t, p, "GET", m, "", nil, alice.AccessJwt, map[string]string{"atproto-proxy": appViewDID + "#bsky_appview"}), 400, "InvalidToken")
		}
		// A plain app password cannot use chat; a privileged one can; both can use the AppView.
		av.Handle("chat.bsky.convo.listConvos", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"convos": []any{}})
		})
		plain := testpds.AppPasswordSession(t, p, alice, "plain", false)
		priv := testpds.AppPasswordSession(t, p, alice, "privileged", true)
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "chat.bsky.convo.listConvos", "", nil, plain, nil), 400, "InvalidToken")
		if len(av.Calls()) != n {
			t.Fatal("a refused call reached the service")
		}
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, plain, nil), 200, "")
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "chat.bsky.convo.listConvos", "", nil, priv, nil), 200, "")
		if c := av.Last(t); c.NSID != "chat.bsky.convo.listConvos" || c.Iss != alice.DID {
			t.Fatalf("privileged chat call: %+v", c)
		}
	})

	t.Run("upstream errors", func(t *testing.T) {
		av.Handle("app.bsky.graph.getList", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Atproto-Repo-Rev", "3abc")
			testservice.WriteJSON(w, 400, map[string]string{"error": "BlockedActor", "message": "you are blocked"})
		})
		r := testpds.Call(t, p, "GET", "app.bsky.graph.getList", "list=at://did:plc:x/app.bsky.graph.list/1", nil, alice.AccessJwt, nil)
		testpds.WantStatus(t, r, 400, "BlockedActor")
		if r.JSON()["message"] != "you are blocked" || r.Header.Get("Atproto-Repo-Rev") != "3abc" {
			t.Fatalf("4xx passthrough: %s %v", r, r.Header)
		}
		av.Handle("app.bsky.graph.getLists", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "slow down", 429)
		})
		r = testpds.Call(t, p, "GET", "app.bsky.graph.getLists", "actor=alice.test", nil, alice.AccessJwt, nil)
		testpds.WantStatus(t, r, 429, "RateLimitExceeded")
		if r.Header.Get("Retry-After") != "7" {
			t.Fatalf("retry-after: %v", r.Header)
		}
		for _, status := range []int{500, 503} {
			av.Handle("app.bsky.graph.getFollows", func(w http.ResponseWriter, r *http.Request) {
				testservice.WriteJSON(w, status, map[string]string{"error": "InternalServerError", "message": "db down"})
			})
			testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.graph.getFollows", "actor=alice.test", nil, alice.AccessJwt, nil), 502, "UpstreamFailure")
		}
	})

	t.Run("size cap", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 2<<20) // the test cap is 1 MiB
		av.Handle("app.bsky.graph.getFollowers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		})
		r := testpds.Call(t, p, "GET", "app.bsky.graph.getFollowers", "actor=alice.test", nil, alice.AccessJwt, nil)
		testpds.WantStatus(t, r, 502, "UpstreamFailure")
		// Without a length the PDS finds out mid-stream: the connection is cut, never a clean short body.
		av.Handle("app.bsky.graph.getFollowers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			for i := 0; i < 4; i++ {
				w.Write(big[:len(big)/2])
				w.(http.Flusher).Flush()
			}
		})
		err := rawGet(t, p, "app.bsky.graph.getFollowers?actor=alice.test", alice.AccessJwt, 1<<20)
		if err == nil {
			t.Fatal("an oversized chunked response reached the client whole")
		}
	})

	t.Run("timeouts and unreachable", func(t *testing.T) {
		av.Handle("app.bsky.graph.getBlocks", func(w http.ResponseWriter, r *http.Request) {
			select { // never answers in time: headers timeout is 1 s here
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		start := time.Now()
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.graph.getBlocks", "", nil, alice.AccessJwt, nil), 504, "UpstreamTimeout")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("headers timeout took %v", d)
		}
		av.Handle("app.bsky.graph.getMutes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.Write([]byte(`{"mutes":[`))
			w.(http.Flusher).Flush()
			select { // stalls mid-body: body timeout is 500 ms here
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		if err := rawGet(t, p, "app.bsky.graph.getMutes", alice.AccessJwt, 0); err == nil {
			t.Fatal("a stalled body was relayed as complete")
		}
	})

	t.Run("compression", func(t *testing.T) {
		gz := func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				testservice.WriteJSON(w, 200, map[string]any{"feed": []any{}, "plain": true})
				return
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			json.NewEncoder(zw).Encode(map[string]any{"feed": []any{}, "gzipped": true})
			zw.Close()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
			w.Write(buf.Bytes())
		}
		av.Handle("app.bsky.graph.getStarterPacks", gz)
		av.Handle("app.bsky.feed.getTimeline", gz)
		// Relayed: the client's Accept-Encoding goes upstream and the compressed bytes come back as they are.
		r := testpds.Call(t, p, "GET", "app.bsky.graph.getStarterPacks", "uris=at://did:plc:x/app.bsky.graph.starterpack/1", nil, alice.AccessJwt,
			map[string]string{"Accept-Encoding": "gzip"})
		if r.Status != 200 || r.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("relayed gzip: %d %v", r.Status, r.Header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if !strings.Contains(string(plain), `"gzipped":true`) {
			t.Fatalf("relayed body: %q", plain)
		}
		// Without Accept-Encoding the service is asked for identity.
		r = testpds.Call(t, p, "GET", "app.bsky.graph.getStarterPacks", "uris=at://did:plc:x/app.bsky.graph.starterpack/1", nil, alice.AccessJwt,
			map[string]string{"Accept-Encoding": "identity"})
		if r.Header.Get("Content-Encoding") != "" || !strings.Contains(string(r.Body), `"plain":true`) {
			t.Fatalf("identity: %v %s", r.Header, r.Body)
		}
		// Read-after-write methods read the body themselves: the PDS decodes it and answers plain JSON.
		r = testpds.Call(t, p, "GET", "app.bsky.feed.getTimeline", "", nil, alice.AccessJwt, map[string]string{"Accept-Encoding": "identity"})
		if r.Status != 200 || r.Header.Get("Content-Encoding") != "" || !strings.Contains(string(r.Body), `"gzipped":true`) {
			t.Fatalf("decoded: %d %v %s", r.Status, r.Header, r.Body)
		}
	})

	t.Run("getFeed", func(t *testing.T) {
		// The generator's record (read from the AppView without a token) names the feed service; the
		// AppView gets the call with a token for that service, bound to getFeedSkeleton.
		const feedDID = "did:web:feeds.example"
		gen := "at://did:plc:creator/app.bsky.feed.generator/cats"
		av.Public("com.atproto.repo.getRecord")
		av.Handle("com.atproto.repo.getRecord", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			switch {
			case q.Get("repo") == "did:plc:creator" && q.Get("collection") == "app.bsky.feed.generator" && q.Get("rkey") == "cats":
				testservice.WriteJSON(w, 200, map[string]any{"uri": gen, "value": map[string]any{"did": feedDID, "displayName": "Cats"}})
			case q.Get("rkey") == "nodid":
				testservice.WriteJSON(w, 200, map[string]any{"uri": gen, "value": map[string]any{"displayName": "Broken"}})
			default:
				testservice.WriteJSON(w, 400, map[string]any{"error": "RecordNotFound", "message": "Could not locate record"})
			}
		})
		av.Expect("app.bsky.feed.getFeed", feedDID, "app.bsky.feed.getFeedSkeleton")
		av.Handle("app.bsky.feed.getFeed", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"feed": []any{}, "cursor": "cats"})
		})
		r := testpds.Call(t, p, "GET", "app.bsky.feed.getFeed", "feed="+gen+"&limit=2", nil, alice.AccessJwt, nil)
		testpds.WantStatus(t, r, 200, "")
		c := av.Last(t)
		if r.JSON()["cursor"] != "cats" || c.Iss != alice.DID || c.Query.Get("feed") != gen || c.Query.Get("limit") != "2" {
			t.Fatalf("getFeed: %s / %+v", r, c)
		}
		if c.Claims["aud"] != feedDID || c.Claims["lxm"] != "app.bsky.feed.getFeedSkeleton" {
			t.Fatalf("getFeed token: %v", c.Claims)
		}
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.feed.getFeed", "feed=at://did:plc:creator/app.bsky.feed.generator/nodid", nil, alice.AccessJwt, nil), 400, "UnknownFeed")
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.feed.getFeed", "feed=at://did:plc:creator/app.bsky.feed.generator/gone", nil, alice.AccessJwt, nil), 400, "RecordNotFound")
	})

	t.Run("preferences are local even with an AppView", func(t *testing.T) {
		n := len(av.Calls())
		testpds.WantStatus(t, p.Procedure("app.bsky.actor.putPreferences", map[string]any{"preferences": []any{
			map[string]any{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true}}}, alice.AccessJwt), 200, "")
		r := p.Query("app.bsky.actor.getPreferences", nil, alice.AccessJwt)
		testpds.WantStatus(t, r, 200, "")
		if prefs, _ := r.JSON()["preferences"].([]any); len(prefs) != 1 {
			t.Fatalf("prefs: %s", r)
		}
		// Naming the configured AppView explicitly changes nothing.
		r = testpds.Call(t, p, "GET", "app.bsky.actor.getPreferences", "", nil, alice.AccessJwt, map[string]string{"atproto-proxy": appViewDID + "#bsky_appview"})
		if prefs, _ := r.JSON()["preferences"].([]any); r.Status != 200 || len(prefs) != 1 {
			t.Fatalf("prefs with the AppView named: %s", r)
		}
		if len(av.Calls()) != n {
			t.Fatal("preferences went to the AppView")
		}
	})
}

// rawGet reads a whole response and returns the transport error, if any (truncated bodies).
func rawGet(t *testing.T, p *testpds.PDS, path, token string, min int) error {
	t.Helper()
	req, _ := http.NewRequest("GET", p.URL+"/xrpc/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil && len(b) < min {
		t.Fatalf("short body without error: %d bytes", len(b))
	}
	return err
}

// TestProxyHeaderTarget: atproto-proxy names a service by DID; the PDS resolves the DID document (did:plc,
// through the PLC directory) and forwards to its service endpoint, with the bare DID as the token's aud.
func TestProxyHeaderTarget(t *testing.T) {
	plcURL := testplc.Start(t)
	chat := testservice.Start(t, plcURL, "")
	chat.DID = testservice.RegisterDID(t, plcURL, map[string]string{"bsky_chat": chat.URL})
	av := testservice.Start(t, plcURL, appViewDID)
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_DISABLE_SSRF_PROTECTION": "true", // the chat service's endpoint is on loopback
		"PDS_BSKY_APP_VIEW_URL":       av.URL,
		"PDS_BSKY_APP_VIEW_DID":       appViewDID,
	}})
	alice := p.CreateAccount("alice")
	chat.Handle("chat.bsky.convo.listConvos", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 200, map[string]any{"convos": []any{}, "cursor": "chat"})
	})
	chat.Handle("app.bsky.actor.getPreferences", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 200, map[string]any{"preferences": []any{map[string]any{"$type": "from.elsewhere"}}})
	})
	proxy := map[string]string{"atproto-proxy": chat.DID + "#bsky_chat"}
	r := testpds.Call(t, p, "GET", "chat.bsky.convo.listConvos", "limit=3", nil, alice.AccessJwt, proxy)
	testpds.WantStatus(t, r, 200, "")
	if r.JSON()["cursor"] != "chat" {
		t.Fatalf("answer: %s", r)
	}
	c := chat.Last(t)
	if c.Claims["aud"] != chat.DID || c.Iss != alice.DID || c.Query.Get("limit") != "3" {
		t.Fatalf("chat call: %+v", c)
	}
	if len(av.Calls()) != 0 {
		t.Fatal("the AppView got the chat call")
	}
	// Preferences named at another service are that service's.
	r = testpds.Call(t, p, "GET", "app.bsky.actor.getPreferences", "", nil, alice.AccessJwt, proxy)
	if !strings.Contains(string(r.Body), "from.elsewhere") {
		t.Fatalf("getPreferences elsewhere: %s", r)
	}

	for header, msg := range map[string]string{
		"#bsky_chat":            "no did specified in proxy header",
		chat.DID:                "no service id specified in proxy header",
		chat.DID + "#":          "no service id specified in proxy header",
		chat.DID + "#a#b":       "invalid proxy header format",
		chat.DID + "#bsky chat": "proxy header cannot contain spaces",
		"notadid#bsky_chat":     "invalid DID in proxy header",
		"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#bsky_chat": "could not resolve proxy did",
		chat.DID + "#atproto_labeler":                "could not resolve proxy did service url",
	} {
		r := testpds.Call(t, p, "GET", "chat.bsky.convo.listConvos", "", nil, alice.AccessJwt, map[string]string{"atproto-proxy": header})
		testpds.WantStatus(t, r, 400, "InvalidRequest")
		if r.JSON()["message"] != msg {
			t.Errorf("header %q: got %s, want message %q", header, r, msg)
		}
	}
	// A method outside the default namespaces is proxied when a target is named.
	chat.Handle("com.example.custom.doThing", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 200, map[string]any{"ok": true})
	})
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "com.example.custom.doThing", "", nil, alice.AccessJwt, proxy), 200, "")
}

// TestProxySSRF: with SSRF protection on (the default), a user-named service cannot make the PDS connect to a
// private or loopback address, whether its endpoint is plain http, an IP literal, or a name that resolves to
// loopback; the answer is a 400, and the service never hears from the PDS.
func TestProxySSRF(t *testing.T) {
	plcURL := testplc.Start(t)
	svc := testservice.Start(t, plcURL, "")
	svc.Handle("chat.bsky.convo.listConvos", func(w http.ResponseWriter, r *http.Request) { testservice.WriteJSON(w, 200, map[string]any{}) })
	_, port, _ := strings.Cut(strings.TrimPrefix(svc.URL, "http://"), ":")
	svc.DID = testservice.RegisterDID(t, plcURL, map[string]string{
		"plain_http": svc.URL,
		"ip_literal": "https://127.0.0.1:" + port,
		"host_name":  "https://localhost:" + port,
		"metadata":   "https://169.254.169.254",
	})
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL})
	if p.Config.DisableSSRFProtection {
		t.Fatal("SSRF protection must be on by default")
	}
	alice := p.CreateAccount("alice")
	for _, id := range []string{"plain_http", "ip_literal", "host_name", "metadata"} {
		r := testpds.Call(t, p, "GET", "chat.bsky.convo.listConvos", "", nil, alice.AccessJwt, map[string]string{"atproto-proxy": svc.DID + "#" + id})
		testpds.WantStatus(t, r, 400, "InvalidRequest")
		if !strings.Contains(r.JSON()["message"].(string), "not allowed") {
			t.Errorf("%s: %s", id, r)
		}
	}
	if n := len(svc.Calls()); n != 0 {
		t.Fatalf("the private service got %d calls", n)
	}
}

// TestProxyUpstreamDown: a configured service that does not answer is a 502.
func TestProxyUpstreamDown(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL": closedURL(t),
		"PDS_BSKY_APP_VIEW_DID": appViewDID,
	}})
	alice := p.CreateAccount("alice")
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, alice.AccessJwt, nil), 502, "UpstreamFailure")
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.actor.getProfile", "actor="+alice.DID, nil, alice.AccessJwt, nil), 502, "UpstreamFailure")
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}
