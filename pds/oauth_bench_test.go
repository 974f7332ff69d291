package pds_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	ioauth "github.com/bluesky-social/indigo/atproto/auth/oauth"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// BenchmarkCreateRecordAuth: an authenticated createRecord with an OAuth access token and a DPoP proof against
// the same with a legacy Bearer session token, on the same server and account (BenchmarkCreateRecord's
// harness). The DPoP figures include making the proof (ES256 signature) on the client, as a real app does.
func BenchmarkCreateRecordAuth(b *testing.B) {
	p := testpds.Start(b, testpds.Options{})
	a := p.CreateAccount("benchauth")
	sess := newOAuthApp(b, p, "atproto", "transition:generic").signIn(testbrowser.New(b), a)
	hc := benchHTTPClient()
	u := p.URL + "/xrpc/com.atproto.repo.createRecord"
	for _, clients := range []int{1, 4} {
		name := map[int]string{1: "clients=1", 4: "clients=4/accounts=1"}[clients]
		b.Run("bearer/"+name, func(b *testing.B) {
			runClients(b, clients, func(_, i int) bool {
				return benchCall(b, hc, http.MethodPost, u, a.AccessJwt, createRecordBody(a.DID, i))
			})
		})
		b.Run("dpop/"+name, func(b *testing.B) {
			runClients(b, clients, func(_, i int) bool { return benchDPoPCall(b, hc, sess, u, createRecordBody(a.DID, i)) })
		})
	}
}

// benchDPoPCall posts body with the session's token and a fresh proof, keeping the nonce the server hands out
// (a nonce rotation costs one retry, as for any client).
func benchDPoPCall(b *testing.B, hc *http.Client, sess *ioauth.ClientSession, u string, body []byte) bool {
	for attempt := 0; attempt < 2; attempt++ {
		proof, err := sess.NewHostDPoP(http.MethodPost, u)
		if err != nil {
			b.Error(err)
			return false
		}
		tok, _ := sess.GetHostAccessData()
		req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		resp, err := hc.Do(req)
		if err != nil {
			b.Error(err)
			return false
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			sess.UpdateHostDPoPNonce(context.Background(), n)
		}
		if resp.StatusCode == http.StatusOK {
			return true
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			b.Errorf("createRecord with DPoP: %d %s", resp.StatusCode, out)
			return false
		}
	}
	return false
}
