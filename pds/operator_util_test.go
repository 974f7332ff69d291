package pds_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// startWithMail starts a PDS that sends its mail to a real SMTP server on loopback.
func startWithMail(t *testing.T, env map[string]string) (*testpds.PDS, *testsmtp.Server) {
	t.Helper()
	smtpSrv := testsmtp.Start(t, testsmtp.Options{})
	e := map[string]string{
		"PDS_EMAIL_SMTP_URL":     smtpSrv.URL(),
		"PDS_EMAIL_FROM_ADDRESS": "PDS <noreply@pds.test>",
	}
	for k, v := range env {
		e[k] = v
	}
	return testpds.Start(t, testpds.Options{Env: e}), smtpSrv
}

// jwtScope reads the scope claim of a session JWT (no verification: the server made it).
func jwtScope(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Scope
}

// adminCall calls an XRPC method with HTTP Basic credentials (user "admin"); password "" sends none.
func adminCall(t *testing.T, p *testpds.PDS, method, nsid string, params url.Values, body any, password string) *testpds.Response {
	t.Helper()
	u := p.URL + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var rd *bytes.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	return p.Do(req, "")
}

const adminPass = "admin-pass" // testpds's PDS_ADMIN_PASSWORD

func adminQuery(t *testing.T, p *testpds.PDS, nsid string, params url.Values) *testpds.Response {
	t.Helper()
	return adminCall(t, p, http.MethodGet, nsid, params, nil, adminPass)
}

func adminProcedure(t *testing.T, p *testpds.PDS, nsid string, body any) *testpds.Response {
	t.Helper()
	return adminCall(t, p, http.MethodPost, nsid, nil, body, adminPass)
}

func mustOK(t *testing.T, r *testpds.Response) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	return r.JSON()
}

func login(t *testing.T, p *testpds.PDS, identifier, password string) *testpds.Response {
	t.Helper()
	return p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": identifier, "password": password}, "")
}

// nextFor reads firehose frames until one of type typ about did (earlier events of the test may still be in
// flight when a live subscription starts).
func nextFor(t *testing.T, fh *fhClient, typ, did string) *fhFrame {
	t.Helper()
	for range 50 {
		f := fh.next()
		if f.Type == typ && f.DID() == did {
			return f
		}
	}
	t.Fatalf("no %s event for %s", typ, did)
	return nil
}
