package pds_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

// Every admin method refuses requests without the admin password, with a wrong one, with the wrong user, and
// with a user's access token.
func TestAdminAuthRequired(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	type method struct {
		nsid  string
		query bool
	}
	methods := []method{
		{"com.atproto.admin.getAccountInfo", true}, {"com.atproto.admin.getAccountInfos", true},
		{"com.atproto.admin.searchAccounts", true}, {"com.atproto.admin.getSubjectStatus", true},
		{"com.atproto.admin.getInviteCodes", true},
		{"com.atproto.admin.updateSubjectStatus", false}, {"com.atproto.admin.updateAccountHandle", false},
		{"com.atproto.admin.updateAccountEmail", false}, {"com.atproto.admin.updateAccountPassword", false},
		{"com.atproto.admin.deleteAccount", false}, {"com.atproto.admin.disableAccountInvites", false},
		{"com.atproto.admin.enableAccountInvites", false}, {"com.atproto.admin.disableInviteCodes", false},
		{"com.atproto.admin.sendEmail", false},
		{"com.atproto.server.createInviteCode", false}, {"com.atproto.server.createInviteCodes", false},
	}
	// Valid inputs, so only authentication can refuse them.
	params := url.Values{"did": {alice.DID}, "dids": {alice.DID}}
	body := map[string]any{
		"did": alice.DID, "account": alice.DID, "handle": "alice2.test", "email": "x@example.com", "password": "pw",
		"subject":  map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": alice.DID},
		"takedown": map[string]any{"applied": true}, "codes": []string{"x"}, "useCount": 1, "codeCount": 1,
		"recipientDid": alice.DID, "senderDid": alice.DID, "content": "hi",
	}
	for _, m := range methods {
		verb, b, q := http.MethodPost, any(body), url.Values(nil)
		if m.query {
			verb, b, q = http.MethodGet, nil, params
		}
		testpds.WantStatus(t, testpds.AdminCall(t, p, verb, m.nsid, q, b, ""), 401, "AuthMissing")
		testpds.WantStatus(t, testpds.AdminCall(t, p, verb, m.nsid, q, b, "wrong"), 401, "AuthenticationRequired")
		testpds.WantStatus(t, testpds.AdminCall(t, p, verb, m.nsid, q, b, testpds.AdminPassword+"x"), 401, "AuthenticationRequired")
		// Right password, wrong user.
		u := p.URL + "/xrpc/" + m.nsid + "?" + q.Encode()
		req, _ := http.NewRequest(verb, u, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("root", testpds.AdminPassword)
		testpds.WantStatus(t, p.Do(req, ""), 401, "AuthenticationRequired")
		// A user's session is not admin.
		req, _ = http.NewRequest(verb, u, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if r := p.Do(req, alice.AccessJwt); r.Status != 401 {
			t.Errorf("%s with a user token: %s", m.nsid, r)
		}
	}
	// Nothing above changed the account.
	s := testpds.MustOK(t, p.Query("com.atproto.server.getSession", nil, alice.AccessJwt))
	if s["handle"] != alice.Handle || s["email"] != alice.Email || s["active"] != true {
		t.Fatalf("account changed by refused admin calls: %v", s)
	}
}

func TestAdminAccounts(t *testing.T) {
	t.Parallel()
	p, mail := testpds.StartWithMail(t, nil)
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	carol := p.CreateAccount("carol")

	info := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {alice.DID}}))
	if info["did"] != alice.DID || info["handle"] != alice.Handle || info["email"] != alice.Email || info["indexedAt"] == nil {
		t.Fatalf("getAccountInfo: %v", info)
	}
	testpds.WantStatus(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {"did:plc:nobody"}}), 400, "NotFound")
	infos := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfos", url.Values{"dids": {alice.DID, "did:plc:nobody", bob.DID}}))["infos"].([]any)
	if len(infos) != 2 {
		t.Fatalf("getAccountInfos: %v", infos)
	}

	// searchAccounts: by email prefix, and paging through everyone.
	found := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.searchAccounts", url.Values{"email": {"BO"}}))["accounts"].([]any)
	if len(found) != 1 || found[0].(map[string]any)["did"] != bob.DID {
		t.Fatalf("searchAccounts email=bo: %v", found)
	}
	if none := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.searchAccounts", url.Values{"email": {"%"}}))["accounts"].([]any); len(none) != 0 {
		t.Fatalf("LIKE wildcard not escaped: %v", none)
	}
	seen := map[string]bool{}
	testpds.AdminPages(t, p, "com.atproto.admin.searchAccounts", 2, 10, func(page map[string]any) {
		for _, a := range page["accounts"].([]any) {
			seen[a.(map[string]any)["did"].(string)] = true
		}
	})
	if len(seen) != 3 || !seen[carol.DID] {
		t.Fatalf("paging searchAccounts saw %v", seen)
	}

	// updateAccountEmail (by handle): the new address is unconfirmed and logs in.
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountEmail", map[string]any{"account": alice.Handle, "email": "alice.new@example.com"}))
	testpds.MustOK(t, testpds.Login(t, p, "alice.new@example.com", alice.Password))
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountEmail", map[string]any{"account": alice.DID, "email": bob.Email}), 400, "InvalidRequest")

	// updateAccountPassword revokes every session.
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountPassword", map[string]any{"did": bob.DID, "password": "reset-by-admin"}))
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, bob.RefreshJwt), 400, "ExpiredToken")
	testpds.WantStatus(t, testpds.Login(t, p, bob.Handle, bob.Password), 401, "AuthenticationRequired")
	testpds.MustOK(t, testpds.Login(t, p, bob.Handle, "reset-by-admin"))

	// updateAccountHandle: the handle changes everywhere, with an #identity event.
	fh := testpds.Subscribe(t, p, "")
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountHandle", map[string]any{"did": carol.DID, "handle": "carol2.test"}))
	f := testpds.NextFor(t, fh, "#identity", carol.DID)
	if f.Identity == nil || f.Identity.Did != carol.DID || f.Identity.Handle == nil || *f.Identity.Handle != "carol2.test" {
		t.Fatalf("after updateAccountHandle: %+v", f)
	}
	if r := testpds.MustOK(t, p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"carol2.test"}}, "")); r["did"] != carol.DID {
		t.Fatalf("resolveHandle: %v", r)
	}
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateAccountHandle", map[string]any{"did": carol.DID, "handle": "alice.test"}), 400, "HandleNotAvailable")

	// sendEmail reaches the account's address.
	out := testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.sendEmail", map[string]any{
		"recipientDid": carol.DID, "senderDid": "did:plc:moderator", "subject": "About your account", "content": "Please read the rules.",
	}))
	if out["sent"] != true {
		t.Fatalf("sendEmail: %v", out)
	}
	msg := mail.Next(t)
	if msg.To[0] != carol.Email || msg.Subject != "About your account" || !strings.Contains(msg.Text, "Please read the rules.") {
		t.Fatalf("admin mail: to %v subject %q text %q", msg.To, msg.Subject, msg.Text)
	}
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.sendEmail", map[string]any{"recipientDid": "did:plc:nobody", "senderDid": "did:plc:x", "content": "x"}), 400, "InvalidRequest")

	// deleteAccount removes the account, with #account deleted.
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.deleteAccount", map[string]any{"did": carol.DID}))
	f = testpds.NextFor(t, fh, "#account", carol.DID)
	if f.Account == nil || f.Account.Did != carol.DID || f.Account.Active || f.Account.Status == nil || *f.Account.Status != "deleted" {
		t.Fatalf("after deleteAccount: %+v", f)
	}
	testpds.WantStatus(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {carol.DID}}), 400, "NotFound")
	testpds.WantStatus(t, testpds.Login(t, p, carol.Handle, carol.Password), 401, "AuthenticationRequired")
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.deleteAccount", map[string]any{"did": carol.DID}), 400, "AccountNotFound")
}
