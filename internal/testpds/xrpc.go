package testpds

// XRPC calls beyond Query and Procedure, and the checks tests make of an answer.

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Call sends an XRPC request with extra headers.
func Call(t testing.TB, p *PDS, method, nsid, query string, body []byte, token string, headers map[string]string) *Response {
	t.Helper()
	u := p.URL + "/xrpc/" + nsid
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return p.Do(req, token)
}

// WantStatus fails the test unless r has the status and, if errName is set, that XRPC error name.
func WantStatus(t testing.TB, r *Response, status int, errName string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want %d %s, got %s", status, errName, r)
	}
	if errName != "" && r.ErrorName() != errName {
		t.Fatalf("want error %s, got %s", errName, r)
	}
}

// MustOK fails the test unless r is a 200 and returns its JSON body.
func MustOK(t testing.TB, r *Response) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	return r.JSON()
}
