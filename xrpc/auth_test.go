package xrpc

import (
	"net/http/httptest"
	"testing"
)

func TestAuthHeaders(t *testing.T) {
	cases := []struct {
		hdr  string
		tok  string
		isOK bool
	}{
		{"Bearer abc.def", "abc.def", true},
		{"bearer abc", "abc", true},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic YWRtaW46cHc=", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.hdr != "" {
			r.Header.Set("Authorization", tc.hdr)
		}
		tok, ok := BearerToken(r)
		if tok != tc.tok || ok != tc.isOK {
			t.Errorf("%q: got %q %v", tc.hdr, tok, ok)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("admin", "pw")
	if u, p, ok := BasicAuth(r); !ok || u != "admin" || p != "pw" {
		t.Errorf("basic: %q %q %v", u, p, ok)
	}
	r.SetBasicAuth("admin", "")
	if _, _, ok := BasicAuth(r); ok {
		t.Error("empty password accepted")
	}
	r.Header.Set("Authorization", "DPoP tok")
	if tok, ok := DPoPToken(r); !ok || tok != "tok" {
		t.Errorf("dpop: %q %v", tok, ok)
	}
}
