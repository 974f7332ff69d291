package xrpc

import (
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/pdsgo/pds/lexicons"
)

func inputFor(t *testing.T, nsid string) *inputSchema {
	t.Helper()
	cat, err := lexicons.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	s, err := cat.Resolve(nsid)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.Def.(lexicon.SchemaProcedure)
	if !ok {
		t.Fatalf("%s is not a procedure", nsid)
	}
	return newInputSchema(cat, nsid, p.Input)
}

// Real-world bodies must not be rejected by input validation.
func TestInputValidationAcceptsRealBodies(t *testing.T) {
	post := `{"$type":"app.bsky.feed.post","text":"hi","createdAt":"2024-05-01T12:00:00.000Z"}`
	cases := map[string]string{
		"com.atproto.repo.createRecord": `{"repo":"did:plc:abc","collection":"app.bsky.feed.post","record":` + post + `,"validate":true}`,
		"com.atproto.repo.putRecord":    `{"repo":"alice.test","collection":"app.bsky.actor.profile","rkey":"self","record":{"$type":"app.bsky.actor.profile"},"swapRecord":null}`,
		"com.atproto.repo.deleteRecord": `{"repo":"alice.test","collection":"app.bsky.feed.post","rkey":"3jzfcijpj2z2a","swapCommit":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}`,
		"com.atproto.repo.applyWrites": `{"repo":"did:plc:abc","writes":[` +
			`{"$type":"com.atproto.repo.applyWrites#create","collection":"app.bsky.feed.post","value":` + post + `},` +
			`{"$type":"com.atproto.repo.applyWrites#update","collection":"app.bsky.feed.post","rkey":"3jzfcijpj2z2a","value":` + post + `},` +
			`{"$type":"com.atproto.repo.applyWrites#delete","collection":"app.bsky.feed.post","rkey":"3jzfcijpj2z2a"}]}`,
		"com.atproto.server.createSession":  `{"identifier":"alice.test","password":"hunter2"}`,
		"com.atproto.server.createAccount":  `{"handle":"alice.test","email":"a@example.com","password":"pw","inviteCode":"x-y"}`,
		"app.bsky.actor.putPreferences":     `{"preferences":[{"$type":"app.bsky.actor.defs#adultContentPref","enabled":false},{"$type":"com.example.unknownPref","x":1}]}`,
		"com.atproto.identity.updateHandle": `{"handle":"bob.test"}`,
	}
	for nsid, body := range cases {
		in := inputFor(t, nsid)
		if in == nil {
			t.Errorf("%s: no input schema", nsid)
			continue
		}
		if err := checkJSON([]byte(body), maxBodyDepth); err != nil {
			t.Errorf("%s: checkJSON: %v", nsid, err)
		}
		if _, err := in.validate([]byte(body)); err != nil {
			t.Errorf("%s: rejected valid body: %v", nsid, err)
		}
	}
	// non-JSON input (uploadBlob) has no schema to check
	if inputFor(t, "com.atproto.repo.uploadBlob") != nil {
		t.Error("uploadBlob got a JSON input schema")
	}
}

func TestInputValidationRejects(t *testing.T) {
	cases := []struct{ nsid, body, want string }{
		{"com.atproto.repo.applyWrites", `{"repo":"did:plc:abc","writes":[{"$type":"com.atproto.repo.applyWrites#delete","collection":"app.bsky.feed.post"}]}`, "Invalid input"},
		{"com.atproto.repo.applyWrites", `{"repo":"did:plc:abc","writes":[{"$type":"com.example.nope"}]}`, "Invalid input"},
		{"com.atproto.repo.createRecord", `{"repo":"did:plc:abc","collection":"app.bsky.feed.post","record":"text"}`, "Invalid input"},
		{"com.atproto.repo.createRecord", `{"repo":"did:plc:abc","collection":"app.bsky.feed.post","record":{},"validate":"yes"}`, "Invalid input"},
		{"com.atproto.server.createSession", `{"password":"x"}`, `Input must have the property "identifier"`},
		{"app.bsky.actor.putPreferences", `{"preferences":[{"$type":"app.bsky.actor.defs#adultContentPref","enabled":"no"}]}`, "Invalid input"},
	}
	for _, tc := range cases {
		_, err := inputFor(t, tc.nsid).validate([]byte(tc.body))
		if err == nil || err.Status != 400 || !strings.Contains(err.Message, tc.want) {
			t.Errorf("%s %s: got %v, want 400 containing %q", tc.nsid, tc.body, err, tc.want)
		}
	}
}

// TestInputDefaults: the lexicon's defaults fill absent top-level properties (a required one with a default
// is then present), and the rest of the body is kept byte for byte.
func TestInputDefaults(t *testing.T) {
	in := inputFor(t, "com.atproto.server.createInviteCodes")
	for body, want := range map[string]string{
		`{"useCount":2}`:                             `{"codeCount":1,"useCount":2}`,
		` { "useCount" : 2.0e0 }`:                    ` {"codeCount":1, "useCount" : 2.0e0 }`,
		`{"codeCount":5,"useCount":2}`:               `{"codeCount":5,"useCount":2}`,
		`{"useCount":1,"forAccounts":["did:plc:a"]}`: `{"codeCount":1,"useCount":1,"forAccounts":["did:plc:a"]}`,
	} {
		got, err := in.validate([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if string(got) != want {
			t.Errorf("%s: got %s, want %s", body, got, want)
		}
	}
	if _, err := in.validate([]byte(`{}`)); err == nil || !strings.Contains(err.Message, "useCount") {
		t.Fatalf("{} without useCount: %v", err)
	}
	// An empty object gets its defaults without a stray comma.
	got, _ := inputFor(t, "com.atproto.server.createInviteCodes").applyDefaults([]byte("{ }"), map[string]any{})
	if string(got) != `{"codeCount":1 }` {
		t.Fatalf("empty object: %s", got)
	}
}
