package pds_test

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func TestAppPasswords(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")

	created := testpds.MustOK(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "client"}, alice.AccessJwt))
	pw, _ := created["password"].(string)
	if !regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`).MatchString(pw) || created["name"] != "client" || created["privileged"] != false || created["createdAt"] == nil {
		t.Fatalf("createAppPassword: %v", created)
	}
	priv := testpds.MustOK(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "trusted", "privileged": true}, alice.AccessJwt))
	privPW := priv["password"].(string)
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "client"}, alice.AccessJwt), 400, "InvalidRequest")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "  "}, alice.AccessJwt), 400, "InvalidRequest")

	list := testpds.MustOK(t, p.Query("com.atproto.server.listAppPasswords", nil, alice.AccessJwt))["passwords"].([]any)
	if len(list) != 2 {
		t.Fatalf("listAppPasswords: %v", list)
	}
	for _, e := range list {
		if _, leaked := e.(map[string]any)["password"]; leaked {
			t.Fatalf("listAppPasswords shows a password: %v", e)
		}
	}

	// Logins: the account password gives full access, app passwords their scopes.
	full := testpds.MustOK(t, testpds.Login(t, p, alice.Handle, alice.Password))
	app := testpds.MustOK(t, testpds.Login(t, p, alice.Handle, pw))
	privSess := testpds.MustOK(t, testpds.Login(t, p, alice.Email, privPW))
	if s := testpds.JWTScope(t, full["accessJwt"].(string)); s != "com.atproto.access" {
		t.Fatalf("password session scope %q", s)
	}
	appTok, privTok := app["accessJwt"].(string), privSess["accessJwt"].(string)
	if s := testpds.JWTScope(t, appTok); s != "com.atproto.appPass" {
		t.Fatalf("app password session scope %q", s)
	}
	if s := testpds.JWTScope(t, privTok); s != "com.atproto.appPassPrivileged" {
		t.Fatalf("privileged app password session scope %q", s)
	}
	// Another account's app password does not open this one.
	bob := p.CreateAccount("bob")
	testpds.WantStatus(t, testpds.Login(t, p, bob.Handle, pw), 401, "AuthenticationRequired")

	// Scope matrix: standard methods take app passwords; account settings take only full access.
	type call struct {
		name string
		do   func(tok string) *testpds.Response
	}
	standard := []call{
		{"getSession", func(tok string) *testpds.Response { return p.Query("com.atproto.server.getSession", nil, tok) }},
		{"createRecord", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("hi")}, tok)
		}},
	}
	fullOnly := []call{
		{"createAppPassword", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "x"}, tok)
		}},
		{"listAppPasswords", func(tok string) *testpds.Response { return p.Query("com.atproto.server.listAppPasswords", nil, tok) }},
		{"revokeAppPassword", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.revokeAppPassword", map[string]any{"name": "x"}, tok)
		}},
		{"requestEmailConfirmation", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.requestEmailConfirmation", nil, tok)
		}},
		{"confirmEmail", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.confirmEmail", map[string]any{"email": alice.Email, "token": "AAAAA-AAAAA"}, tok)
		}},
		{"requestEmailUpdate", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.requestEmailUpdate", nil, tok)
		}},
		{"updateEmail", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.updateEmail", map[string]any{"email": "x@example.com"}, tok)
		}},
		{"getAccountInviteCodes", func(tok string) *testpds.Response {
			return p.Query("com.atproto.server.getAccountInviteCodes", nil, tok)
		}},
		{"updateHandle", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "alice-new.test"}, tok)
		}},
		{"requestAccountDelete", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.requestAccountDelete", nil, tok)
		}},
		{"deactivateAccount", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, tok)
		}},
		{"requestPlcOperationSignature", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.identity.requestPlcOperationSignature", nil, tok)
		}},
		{"signPlcOperation", func(tok string) *testpds.Response {
			return p.Procedure("com.atproto.identity.signPlcOperation", map[string]any{}, tok)
		}},
	}
	for _, tok := range []string{appTok, privTok} {
		for _, c := range standard {
			if r := c.do(tok); r.Status != http.StatusOK {
				t.Errorf("%s with scope %s: %s", c.name, testpds.JWTScope(t, tok), r)
			}
		}
		for _, c := range fullOnly {
			r := c.do(tok)
			if r.Status != http.StatusBadRequest || r.ErrorName() != "InvalidToken" || r.JSON()["message"] != "Bad token scope" {
				t.Errorf("%s with scope %s: want 400 InvalidToken, got %s", c.name, testpds.JWTScope(t, tok), r)
			}
		}
	}
	// The same full-only methods get past authentication with full access (whatever they answer next).
	for _, c := range fullOnly {
		if c.name == "deactivateAccount" {
			continue // would deactivate the account the rest of the test uses
		}
		if r := c.do(full["accessJwt"].(string)); r.JSON()["message"] == "Bad token scope" || r.Status == 401 {
			t.Errorf("%s with full access: %s", c.name, r)
		}
	}

	// Without SMTP configured, mail is logged and the request succeeds (a local install still works).
	testpds.MustOK(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt))

	// Refreshing keeps the app-password scope.
	ref := testpds.MustOK(t, p.Procedure("com.atproto.server.refreshSession", nil, app["refreshJwt"].(string)))
	if s := testpds.JWTScope(t, ref["accessJwt"].(string)); s != "com.atproto.appPass" {
		t.Fatalf("refreshed app password session has scope %q", s)
	}
	privRef := testpds.MustOK(t, p.Procedure("com.atproto.server.refreshSession", nil, privSess["refreshJwt"].(string)))
	if s := testpds.JWTScope(t, privRef["accessJwt"].(string)); s != "com.atproto.appPassPrivileged" {
		t.Fatalf("refreshed privileged session has scope %q", s)
	}

	// Revoking ends that password's sessions and logins, and nothing else.
	testpds.MustOK(t, p.Procedure("com.atproto.server.revokeAppPassword", map[string]any{"name": "client"}, alice.AccessJwt))
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, ref["refreshJwt"].(string)), 400, "ExpiredToken")
	testpds.WantStatus(t, testpds.Login(t, p, alice.Handle, pw), 401, "AuthenticationRequired")
	testpds.MustOK(t, p.Procedure("com.atproto.server.refreshSession", nil, privRef["refreshJwt"].(string)))
	testpds.MustOK(t, p.Procedure("com.atproto.server.refreshSession", nil, full["refreshJwt"].(string)))
	list = testpds.MustOK(t, p.Query("com.atproto.server.listAppPasswords", nil, alice.AccessJwt))["passwords"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "trusted" || list[0].(map[string]any)["privileged"] != true {
		t.Fatalf("after revoke: %v", list)
	}
}
