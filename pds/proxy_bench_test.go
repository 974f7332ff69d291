package pds_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

// BenchmarkProxyGet measures a proxied AppView read end to end on loopback (session check, account key,
// service-token signature, forwarding, relay), against the same read made to the AppView directly.
//
//	go test ./pds/ -run '^$' -bench BenchmarkProxyGet
func BenchmarkProxyGet(b *testing.B) {
	body := []byte(`{"notifications":[],"cursor":"c"}`)
	av := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer av.Close()
	p := testpds.Start(b, testpds.Options{Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL": av.URL, "PDS_BSKY_APP_VIEW_DID": appViewDID,
	}})
	alice := p.CreateAccount("alice")
	get := func(b *testing.B, url, token string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			get(b, av.URL+"/xrpc/app.bsky.notification.listNotifications", "")
		}
	})
	b.Run("via PDS", func(b *testing.B) {
		for b.Loop() {
			get(b, p.URL+"/xrpc/app.bsky.notification.listNotifications", alice.AccessJwt)
		}
	})
}
