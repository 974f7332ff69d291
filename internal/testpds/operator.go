package testpds

// Operator calls: the admin API with HTTP Basic credentials, and a server that sends real mail.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/pdsgo/pds/internal/testsmtp"
)

// StartWithMail starts a PDS that sends its mail to a real SMTP server on loopback.
func StartWithMail(t testing.TB, env map[string]string) (*PDS, *testsmtp.Server) {
	t.Helper()
	smtpSrv := testsmtp.Start(t, testsmtp.Options{})
	e := map[string]string{
		"PDS_EMAIL_SMTP_URL":     smtpSrv.URL(),
		"PDS_EMAIL_FROM_ADDRESS": "PDS <noreply@pds.test>",
	}
	for k, v := range env {
		e[k] = v
	}
	return Start(t, Options{Env: e}), smtpSrv
}

// AdminCall calls an XRPC method with HTTP Basic credentials (user "admin"); password "" sends none.
func AdminCall(t testing.TB, p *PDS, method, nsid string, params url.Values, body any, password string) *Response {
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

const AdminPassword = "admin-pass" // testpds's PDS_ADMIN_PASSWORD

// AdminQuery calls a GET method with the harness's admin password.
func AdminQuery(t testing.TB, p *PDS, nsid string, params url.Values) *Response {
	t.Helper()
	return AdminCall(t, p, http.MethodGet, nsid, params, nil, AdminPassword)
}

// AdminProcedure calls a POST method with the harness's admin password.
func AdminProcedure(t testing.TB, p *PDS, nsid string, body any) *Response {
	t.Helper()
	return AdminCall(t, p, http.MethodPost, nsid, nil, body, AdminPassword)
}

// AdminPages pages through an admin list method, limit items a page and at most maxPages pages, handing each
// page to fn; it stops at the first page without a cursor.
func AdminPages(t testing.TB, p *PDS, nsid string, limit, maxPages int, fn func(page map[string]any)) {
	t.Helper()
	cursor := ""
	for range maxPages {
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		page := MustOK(t, AdminQuery(t, p, nsid, q))
		fn(page)
		if cursor, _ = page["cursor"].(string); cursor == "" {
			return
		}
	}
}
