package pds_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func TestDescribeServerLinksAndContact(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{Env: map[string]string{
		"PDS_PRIVACY_POLICY_URL":    "https://pds.example.com/privacy",
		"PDS_TERMS_OF_SERVICE_URL":  "https://pds.example.com/tos",
		"PDS_CONTACT_EMAIL_ADDRESS": "ops@example.com",
	}})
	d := testpds.MustOK(t, p.Query("com.atproto.server.describeServer", nil, ""))
	links, _ := d["links"].(map[string]any)
	contact, _ := d["contact"].(map[string]any)
	if links["privacyPolicy"] != "https://pds.example.com/privacy" || links["termsOfService"] != "https://pds.example.com/tos" ||
		contact["email"] != "ops@example.com" {
		t.Fatalf("describeServer: %v", d)
	}
	// Unset: empty objects, as the reference.
	p2 := testpds.Start(t, testpds.Options{PLCURL: p.PLCURL})
	d = testpds.MustOK(t, p2.Query("com.atproto.server.describeServer", nil, ""))
	if l, ok := d["links"].(map[string]any); !ok || len(l) != 0 {
		t.Fatalf("links without configuration: %v", d)
	}
	if c, ok := d["contact"].(map[string]any); !ok || len(c) != 0 {
		t.Fatalf("contact without configuration: %v", d)
	}
}

func TestTLSCheck(t *testing.T) {
	t.Parallel()
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	for _, tc := range []struct {
		domain  string
		status  int
		errName string
	}{
		{"localhost", 200, ""},
		{alice.Handle, 200, ""},
		{"ALICE.test.", 200, ""},
		{"nobody.test", 404, "NotFound"},
		{"example.com", 400, "InvalidRequest"},
		{"alice.test.example.com", 400, "InvalidRequest"},
		{"", 400, "InvalidRequest"},
	} {
		resp, err := http.Get(p.URL + "/tls-check?domain=" + url.QueryEscape(tc.domain))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Success bool   `json:"success"`
			Error   string `json:"error"`
		}
		json.Unmarshal(body, &out)
		if resp.StatusCode != tc.status || (tc.status == 200 && !out.Success) || out.Error != tc.errName {
			t.Errorf("tls-check %q: %d %s, want %d %s", tc.domain, resp.StatusCode, body, tc.status, tc.errName)
		}
	}
	// The same decision for built-in ACME.
	for name, want := range map[string]bool{"localhost": true, "alice.test": true, "nobody.test": false, "example.com": false} {
		if got, err := p.Server.HostsName(context.Background(), name); err != nil || got != want {
			t.Errorf("HostsName(%q) = %v, %v", name, got, err)
		}
	}
}
