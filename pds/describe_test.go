package pds_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

// TestDescribeServerReportsRealLimits: describeServer's fields are the server's configuration, and each one is
// what the server then enforces: the handle domains it lists are the ones createAccount accepts (and no
// other), no invite code is asked for when it says none is required, no phone verification exists, and the
// policy links and contact are the operator's. (The lexicon has no place for numeric limits such as blob or
// body sizes; inviteCodeRequired=true is checked by TestInviteCodes.)
func TestDescribeServerReportsRealLimits(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{
		"PDS_SERVICE_HANDLE_DOMAINS": ".alpha.test,.beta.test",
		"PDS_INVITE_REQUIRED":        "false",
		"PDS_PRIVACY_POLICY_URL":     "https://pds.example.com/privacy",
		"PDS_TERMS_OF_SERVICE_URL":   "https://pds.example.com/tos",
		"PDS_CONTACT_EMAIL_ADDRESS":  "ops@pds.example.com",
	}})
	d := testpds.MustOK(t, p.Query("com.atproto.server.describeServer", nil, ""))
	want := map[string]any{
		"did":                       p.Config.ServiceDID,
		"availableUserDomains":      []any{".alpha.test", ".beta.test"},
		"inviteCodeRequired":        false,
		"phoneVerificationRequired": false,
		"links":                     map[string]any{"privacyPolicy": "https://pds.example.com/privacy", "termsOfService": "https://pds.example.com/tos"},
		"contact":                   map[string]any{"email": "ops@pds.example.com"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("describeServer:\n got %v\nwant %v", d, want)
	}
	signup := func(handle string) *testpds.Response {
		return p.Procedure("com.atproto.server.createAccount", map[string]any{
			"handle": handle, "email": handle + "@example.com", "password": "password-1",
		}, "")
	}
	for _, domain := range d["availableUserDomains"].([]any) {
		if r := signup("someone" + domain.(string)); r.Status != http.StatusOK {
			t.Errorf("a handle on the listed domain %s, without invite code: %s", domain, r)
		}
	}
	if r := signup("someone.gamma.test"); r.Status != http.StatusBadRequest {
		t.Errorf("a handle on an unlisted domain: %s", r)
	}
}
