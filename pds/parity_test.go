package pds_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
)

// TestParityProxyTargets: where the reference sends calls that are not the plain AppView default.
func TestParityProxyTargets(t *testing.T) {
	plcURL := testplc.Start(t)
	av := testservice.Start(t, plcURL, appViewDID)
	mod := testservice.Start(t, plcURL, "did:web:mod.test")
	notif := testservice.Start(t, plcURL, "")
	notif.DID = testservice.RegisterDID(t, plcURL, map[string]string{"bsky_notif": notif.URL})
	noNotif := testservice.RegisterDID(t, plcURL, map[string]string{"bsky_chat": notif.URL})
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_DISABLE_SSRF_PROTECTION": "true", // the push service's endpoint is on loopback
		"PDS_BSKY_APP_VIEW_URL":       av.URL,
		"PDS_BSKY_APP_VIEW_DID":       appViewDID,
		"PDS_MOD_SERVICE_URL":         mod.URL,
		"PDS_MOD_SERVICE_DID":         mod.DID,
	}})
	alice := p.CreateAccount("alice")

	t.Run("push goes to the serviceDid's #bsky_notif", func(t *testing.T) {
		for _, m := range []string{"app.bsky.notification.registerPush", "app.bsky.notification.unregisterPush"} {
			notif.Handle(m, func(w http.ResponseWriter, r *http.Request) { testservice.WriteJSON(w, 200, map[string]any{}) })
			av.Handle(m, func(w http.ResponseWriter, r *http.Request) { testservice.WriteJSON(w, 200, map[string]any{}) })
			body := map[string]any{"serviceDid": notif.DID, "token": "tok-1", "platform": "ios", "appId": "xyz.blueskyweb.app"}
			nAV := len(av.Calls())
			testpds.MustOK(t, p.Procedure(m, body, alice.AccessJwt))
			c := notif.Last(t)
			var got map[string]any
			json.Unmarshal(c.Body, &got)
			if c.NSID != m || c.Iss != alice.DID || c.Claims["aud"] != notif.DID || c.Claims["lxm"] != m || got["token"] != "tok-1" {
				t.Fatalf("%s at the push service: %+v %s", m, c, c.Body)
			}
			if len(av.Calls()) != nAV {
				t.Fatalf("%s reached the AppView", m)
			}
			// serviceDid = the AppView: the configured AppView gets it.
			body["serviceDid"] = appViewDID
			nN := len(notif.Calls())
			testpds.MustOK(t, p.Procedure(m, body, alice.AccessJwt))
			if c := av.Last(t); c.NSID != m || c.Claims["aud"] != appViewDID {
				t.Fatalf("%s at the AppView: %+v", m, c)
			}
			if len(notif.Calls()) != nN {
				t.Fatalf("%s for the AppView reached the push service", m)
			}
			// A DID without a push service, and a bad body, are 400s that reach no one.
			body["serviceDid"] = noNotif
			r := p.Procedure(m, body, alice.AccessJwt)
			testpds.WantStatus(t, r, 400, "InvalidRequest")
			if r.JSON()["message"] != "invalid notification service details in did document: "+noNotif {
				t.Fatalf("no #bsky_notif: %s", r)
			}
			testpds.WantStatus(t, p.Procedure(m, map[string]any{"serviceDid": notif.DID}, alice.AccessJwt), 400, "InvalidRequest")
			testpds.WantStatus(t, p.Procedure(m, body, ""), 401, "AuthMissing")
			if len(notif.Calls()) != nN {
				t.Fatalf("%s: a refused call reached the push service", m)
			}
		}
		// The push service's error comes back as it said it.
		notif.Handle("app.bsky.notification.registerPush", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 400, map[string]any{"error": "InvalidToken", "message": "bad push token"})
		})
		r := p.Procedure("app.bsky.notification.registerPush", map[string]any{"serviceDid": notif.DID, "token": "x", "platform": "web", "appId": "a"}, alice.AccessJwt)
		testpds.WantStatus(t, r, 400, "InvalidToken")
	})

	t.Run("unserved methods go to the AppView", func(t *testing.T) {
		av.Handle("com.example.custom.getThing", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"thing": 1})
		})
		out := testpds.MustOK(t, testpds.Call(t, p, "GET", "com.example.custom.getThing", "x=1", nil, alice.AccessJwt, nil))
		if c := av.Last(t); out["thing"] != float64(1) || c.NSID != "com.example.custom.getThing" || c.Claims["aud"] != appViewDID || c.Query.Get("x") != "1" {
			t.Fatalf("fallback to the AppView: %v %+v", out, c)
		}
		// tools.ozone stays the moderation service's.
		mod.Handle("tools.ozone.team.listMembers", func(w http.ResponseWriter, r *http.Request) {
			testservice.WriteJSON(w, 200, map[string]any{"members": []any{}})
		})
		n := len(av.Calls())
		testpds.MustOK(t, testpds.Call(t, p, "GET", "tools.ozone.team.listMembers", "", nil, alice.AccessJwt, nil))
		if len(av.Calls()) != n || mod.Last(t).NSID != "tools.ozone.team.listMembers" {
			t.Fatal("tools.ozone went to the AppView")
		}
	})

	t.Run("createReport from a taken-down account", func(t *testing.T) {
		bob := p.CreateAccount("bob")
		testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
			"subject": repoSubject(bob.DID), "takedown": map[string]any{"applied": true, "ref": "case-1"},
		}))
		td := testpds.MustOK(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": bob.Handle, "password": bob.Password, "allowTakendown": true}, ""))
		tok := td["accessJwt"].(string)
		mod.Handle("com.atproto.moderation.createReport", func(w http.ResponseWriter, r *http.Request) { testservice.WriteJSON(w, 200, map[string]any{"id": 7}) })
		report := []byte(`{"reasonType":"com.atproto.moderation.defs#reasonAppeal","subject":{"$type":"com.atproto.admin.defs#repoRef","did":"` + bob.DID + `"}}`)
		out := testpds.MustOK(t, testpds.Call(t, p, "POST", "com.atproto.moderation.createReport", "", report, tok, nil))
		if c := mod.Last(t); out["id"] != float64(7) || c.Iss != bob.DID || c.Claims["lxm"] != "com.atproto.moderation.createReport" {
			t.Fatalf("appeal: %v %+v", out, c)
		}
		// The takendown scope still opens nothing else; the account's older token opens nothing but the report.
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, tok, nil), 400, "InvalidToken")
		testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, bob.AccessJwt, nil), 401, "AccountTakedown")
	})
}

// TestParityNoAppView: without an AppView, an unserved method is 501, and so are the push methods.
func TestParityNoAppView(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "com.example.custom.getThing", "", nil, alice.AccessJwt, nil), 501, "MethodNotImplemented")
	testpds.WantStatus(t, p.Procedure("app.bsky.notification.registerPush", map[string]any{"serviceDid": "did:web:x.test", "token": "t", "platform": "ios", "appId": "a"}, alice.AccessJwt), 501, "MethodNotImplemented")
}

// TestParityDeprecated: the deprecated and temporary methods the reference still serves.
func TestParityDeprecated(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	testpds.MustOK(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.Post("hello")))
	did := url.Values{"did": {alice.DID}}

	latest := testpds.MustOK(t, p.Query("com.atproto.sync.getLatestCommit", did, ""))
	head := testpds.MustOK(t, p.Query("com.atproto.sync.getHead", did, ""))
	if head["root"] == nil || head["root"] != latest["cid"] {
		t.Fatalf("getHead %v, getLatestCommit %v", head, latest)
	}
	full := p.Query("com.atproto.sync.getRepo", did, "")
	co := p.Query("com.atproto.sync.getCheckout", did, "")
	if co.Status != 200 || co.Header.Get("Content-Type") != full.Header.Get("Content-Type") || !bytes.Equal(co.Body, full.Body) || len(co.Body) == 0 {
		t.Fatalf("getCheckout: %d %q, %d bytes vs getRepo's %d", co.Status, co.Header.Get("Content-Type"), len(co.Body), len(full.Body))
	}
	missing := url.Values{"did": {"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}}
	testpds.WantStatus(t, p.Query("com.atproto.sync.getHead", missing, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getCheckout", missing, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getHead", nil, ""), 400, "InvalidRequest")

	if out := testpds.MustOK(t, p.Query("com.atproto.temp.checkSignupQueue", nil, alice.AccessJwt)); out["activated"] != true {
		t.Fatalf("checkSignupQueue: %v", out)
	}
	testpds.WantStatus(t, p.Query("com.atproto.temp.checkSignupQueue", nil, ""), 401, "AuthMissing")
}
