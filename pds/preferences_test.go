package pds_test

import (
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

// TestPreferences: app.bsky preferences are stored on the PDS (no AppView configured here), per account,
// app.bsky only; personalDetailsPref is for full-access sessions, and its birth date yields declaredAgePref.
func TestPreferences(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	get := func(token string) []map[string]any {
		t.Helper()
		r := p.Query("app.bsky.actor.getPreferences", nil, token)
		testpds.WantStatus(t, r, 200, "")
		raw, ok := r.JSON()["preferences"].([]any)
		if !ok {
			t.Fatalf("no preferences array: %s", r)
		}
		out := make([]map[string]any, len(raw))
		for i, x := range raw {
			out[i], _ = x.(map[string]any)
		}
		return out
	}
	types := func(prefs []map[string]any) string {
		var s []string
		for _, p := range prefs {
			s = append(s, strings.TrimPrefix(p["$type"].(string), "app.bsky.actor.defs#"))
		}
		return strings.Join(s, ",")
	}
	put := func(token string, prefs ...map[string]any) *testpds.Response {
		list := make([]any, len(prefs))
		for i, p := range prefs {
			list[i] = p
		}
		return p.Procedure("app.bsky.actor.putPreferences", map[string]any{"preferences": list}, token)
	}
	pref := func(name string, kv ...any) map[string]any {
		m := map[string]any{"$type": "app.bsky.actor.defs#" + name}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	if got := get(alice.AccessJwt); len(got) != 0 {
		t.Fatalf("new account has prefs: %v", got)
	}
	saved := pref("savedFeedsPrefV2", "items", []any{map[string]any{"id": "3l", "type": "timeline", "value": "following", "pinned": true}})
	r := put(alice.AccessJwt,
		pref("adultContentPref", "enabled", true),
		saved,
		pref("personalDetailsPref", "birthDate", "2000-05-01T00:00:00.000Z"),
		pref("declaredAgePref", "isOverAge13", false)) // read-only: ignored
	testpds.WantStatus(t, r, 200, "")
	got := get(alice.AccessJwt)
	if types(got) != "adultContentPref,savedFeedsPrefV2,personalDetailsPref,declaredAgePref" {
		t.Fatalf("round trip: %s", types(got))
	}
	if got[0]["enabled"] != true || got[3]["isOverAge18"] != true || got[3]["isOverAge13"] != true {
		t.Fatalf("values: %v", got)
	}
	items, _ := got[1]["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["value"] != "following" {
		t.Fatalf("nested value: %v", got[1])
	}
	if len(get(bob.AccessJwt)) != 0 {
		t.Fatal("bob sees alice's preferences")
	}

	// Only app.bsky preferences, each with a $type; nothing changes on a refused put.
	r = put(alice.AccessJwt, pref("adultContentPref", "enabled", false), map[string]any{"$type": "com.example.pref", "x": 1})
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "not in the app.bsky namespace") {
		t.Fatalf("namespace: %s", r)
	}
	testpds.WantStatus(t, p.Procedure("app.bsky.actor.putPreferences", `{"preferences":[{"enabled":true}]}`, alice.AccessJwt), 400, "InvalidRequest")
	testpds.WantStatus(t, p.Procedure("app.bsky.actor.putPreferences", `{}`, alice.AccessJwt), 400, "InvalidRequest")
	if types(get(alice.AccessJwt)) != "adultContentPref,savedFeedsPrefV2,personalDetailsPref,declaredAgePref" {
		t.Fatal("a refused put changed the preferences")
	}

	// An app password does not see nor set personal details, and its puts keep them.
	app := testpds.AppPasswordSession(t, p, alice, "app", false)
	if types(get(app)) != "adultContentPref,savedFeedsPrefV2,declaredAgePref" {
		t.Fatalf("app password view: %s", types(get(app)))
	}
	r = put(app, pref("personalDetailsPref", "birthDate", "2015-01-01T00:00:00.000Z"))
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "personalDetailsPref") {
		t.Fatalf("forbidden pref: %s", r)
	}
	testpds.WantStatus(t, put(app, pref("contentLabelPref", "label", "nsfw", "visibility", "warn")), 200, "")
	if got := types(get(alice.AccessJwt)); got != "personalDetailsPref,contentLabelPref,declaredAgePref" {
		t.Fatalf("after app password put: %s", got)
	}

	// An empty list clears the namespace (for a full-access session, personal details too).
	testpds.WantStatus(t, put(alice.AccessJwt), 200, "")
	if got := get(alice.AccessJwt); len(got) != 0 {
		t.Fatalf("after clearing: %v", got)
	}
	// Under 13: the computed pref says so.
	testpds.WantStatus(t, put(alice.AccessJwt, pref("personalDetailsPref", "birthDate", "2020-01-01T00:00:00.000Z")), 200, "")
	got = get(alice.AccessJwt)
	if len(got) != 2 || got[1]["isOverAge13"] != false || got[1]["isOverAge18"] != false {
		t.Fatalf("declared age: %v", got)
	}
	testpds.WantStatus(t, p.Query("app.bsky.actor.getPreferences", nil, ""), 401, "AuthMissing")
}
