package pds_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func signup(p *testpds.PDS, name, invite string) *testpds.Response {
	body := map[string]any{"handle": name + ".test", "email": name + "@example.com", "password": "password-" + name}
	if invite != "" {
		body["inviteCode"] = invite
	}
	return p.Procedure("com.atproto.server.createAccount", body, "")
}

func TestInviteCodes(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_INVITE_REQUIRED": "true"}})
	if d := testpds.MustOK(t, p.Query("com.atproto.server.describeServer", nil, "")); d["inviteCodeRequired"] != true {
		t.Fatalf("describeServer: %v", d)
	}
	testpds.WantStatus(t, signup(p, "nocode", ""), 400, "InvalidInviteCode")
	testpds.WantStatus(t, signup(p, "badcode", "localhost-aaaaa-aaaaa"), 400, "InvalidInviteCode")

	// createInviteCodes (admin only): two single-use codes.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createInviteCodes", map[string]any{"codeCount": 2, "useCount": 1}, ""), 401, "AuthMissing")
	out := testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCodes", map[string]any{"codeCount": 2, "useCount": 1}))
	groups := out["codes"].([]any)
	g := groups[0].(map[string]any)
	codes := g["codes"].([]any)
	if len(groups) != 1 || g["account"] != "admin" || len(codes) != 2 {
		t.Fatalf("createInviteCodes: %v", out)
	}
	c1, c2 := codes[0].(string), codes[1].(string)
	if !strings.HasPrefix(c1, "localhost-") {
		t.Fatalf("code shape: %q", c1)
	}

	// Use counting: a single-use code works once.
	alice := testpds.MustOK(t, signup(p, "alice", c1))
	testpds.WantStatus(t, signup(p, "carol", c1), 400, "InvalidInviteCode")
	// Disabled codes are refused.
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableInviteCodes", map[string]any{"codes": []string{c2}}))
	testpds.WantStatus(t, signup(p, "dave", c2), 400, "InvalidInviteCode")
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableInviteCodes", map[string]any{"accounts": []string{"admin"}}), 400, "InvalidRequest")

	// getInviteCodes shows uses and the disabled flag.
	list := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getInviteCodes", url.Values{"sort": {"usage"}}))["codes"].([]any)
	first := list[0].(map[string]any)
	if first["code"] != c1 || len(first["uses"].([]any)) != 1 || first["uses"].([]any)[0].(map[string]any)["usedBy"] != alice["did"] {
		t.Fatalf("getInviteCodes by usage: %v", list)
	}
	found := false
	for _, e := range list {
		if m := e.(map[string]any); m["code"] == c2 {
			found = m["disabled"] == true
		}
	}
	if !found {
		t.Fatalf("disabled code not shown disabled: %v", list)
	}

	// Codes for an account: getAccountInviteCodes (full access) lists them; a multi-use code counts uses.
	aliceDID := alice["did"].(string)
	aliceTok := alice["accessJwt"].(string)
	out = testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCodes", map[string]any{"codeCount": 1, "useCount": 2, "forAccounts": []string{aliceDID}}))
	aliceCode := out["codes"].([]any)[0].(map[string]any)["codes"].([]any)[0].(string)
	mine := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", nil, aliceTok))["codes"].([]any)
	if len(mine) != 1 || mine[0].(map[string]any)["code"] != aliceCode || mine[0].(map[string]any)["available"] != float64(2) {
		t.Fatalf("getAccountInviteCodes: %v", mine)
	}
	testpds.MustOK(t, signup(p, "erin", aliceCode))
	testpds.MustOK(t, signup(p, "frank", aliceCode))
	testpds.WantStatus(t, signup(p, "gina", aliceCode), 400, "InvalidInviteCode")
	if m := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", url.Values{"includeUsed": {"false"}}, aliceTok))["codes"].([]any); len(m) != 0 {
		t.Fatalf("includeUsed=false lists a used-up code: %v", m)
	}

	// The account view: invitedBy, invites, invitesDisabled.
	info := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {aliceDID}}))
	if info["invitedBy"].(map[string]any)["code"] != c1 || len(info["invites"].([]any)) != 1 || info["invitesDisabled"] != false {
		t.Fatalf("getAccountInfo: %v", info)
	}
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableAccountInvites", map[string]any{"account": aliceDID, "note": "spam"}))
	if info := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {aliceDID}})); info["invitesDisabled"] != true {
		t.Fatalf("after disableAccountInvites: %v", info)
	}
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.enableAccountInvites", map[string]any{"account": aliceDID}))
	if info := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {aliceDID}})); info["invitesDisabled"] != false {
		t.Fatalf("after enableAccountInvites: %v", info)
	}
	testpds.WantStatus(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableAccountInvites", map[string]any{"account": "did:plc:nobody"}), 400, "AccountNotFound")

	// Disabling by account disables that account's codes.
	out = testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCodes", map[string]any{"codeCount": 1, "useCount": 5, "forAccounts": []string{aliceDID}}))
	another := out["codes"].([]any)[0].(map[string]any)["codes"].([]any)[0].(string)
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableInviteCodes", map[string]any{"accounts": []string{aliceDID}}))
	testpds.WantStatus(t, signup(p, "hank", another), 400, "InvalidInviteCode")

	// A code whose owner is taken down is not usable.
	out = testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCodes", map[string]any{"codeCount": 1, "useCount": 5, "forAccounts": []string{aliceDID}}))
	fresh := out["codes"].([]any)[0].(map[string]any)["codes"].([]any)[0].(string)
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject":  map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": aliceDID},
		"takedown": map[string]any{"applied": true, "ref": "spam"},
	}))
	testpds.WantStatus(t, signup(p, "ivan", fresh), 400, "InvalidInviteCode")

	// Paging through getInviteCodes (recent) visits every code once.
	seen := map[string]bool{}
	testpds.AdminPages(t, p, "com.atproto.admin.getInviteCodes", 2, 20, func(page map[string]any) {
		for _, e := range page["codes"].([]any) {
			code := e.(map[string]any)["code"].(string)
			if seen[code] {
				t.Fatalf("code %s on two pages", code)
			}
			seen[code] = true
		}
	})
	if len(seen) != 5 {
		t.Fatalf("paged through %d codes, want 5", len(seen))
	}
	// Without codeCount, the lexicon's default: one code per account (the reference's answer, not a 400).
	out1 := testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCodes", map[string]any{"useCount": 1, "forAccounts": []string{"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"}}))
	if gs := out1["codes"].([]any); len(gs) != 2 || len(gs[0].(map[string]any)["codes"].([]any)) != 1 || len(gs[1].(map[string]any)["codes"].([]any)) != 1 {
		t.Fatalf("createInviteCodes without codeCount: %v", out1)
	}
}

// With PDS_INVITE_INTERVAL users earn codes, at most five unused at a time; an account whose invites are
// disabled earns them disabled.
func TestEarnedInviteCodes(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_INVITE_REQUIRED": "true", "PDS_INVITE_INTERVAL": "1"}})
	code := testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.server.createInviteCode", map[string]any{"useCount": 2}))["code"].(string)
	alice := testpds.MustOK(t, signup(p, "alice", code))
	tok := alice["accessJwt"].(string)
	first := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", nil, tok))["codes"].([]any)
	if len(first) != 5 {
		t.Fatalf("earned %d codes, want 5", len(first))
	}
	again := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", nil, tok))["codes"].([]any)
	if len(again) != 5 {
		t.Fatalf("second call: %d codes, want still 5", len(again))
	}
	if m := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", url.Values{"createAvailable": {"false"}}, tok))["codes"].([]any); len(m) != 5 {
		t.Fatalf("createAvailable=false: %d", len(m))
	}
	// Use one: one more is earned.
	testpds.MustOK(t, signup(p, "bob", first[0].(map[string]any)["code"].(string)))
	if m := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", url.Values{"includeUsed": {"false"}}, tok))["codes"].([]any); len(m) != 5 {
		t.Fatalf("after one use: %d unused codes, want 5", len(m))
	}

	bob := testpds.MustOK(t, testpds.Login(t, p, "bob.test", "password-bob"))
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.disableAccountInvites", map[string]any{"account": bob["did"]}))
	if m := testpds.MustOK(t, p.Query("com.atproto.server.getAccountInviteCodes", nil, bob["accessJwt"].(string)))["codes"].([]any); len(m) != 0 {
		t.Fatalf("disabled account got usable codes: %v", m)
	}
	if info := testpds.MustOK(t, testpds.AdminQuery(t, p, "com.atproto.admin.getAccountInfo", url.Values{"did": {bob["did"].(string)}})); len(info["invites"].([]any)) != 5 {
		t.Fatalf("disabled account's codes not created for bookkeeping: %v", info["invites"])
	}
}
