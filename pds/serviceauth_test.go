package pds_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testservice"
)

func TestGetServiceAuth(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	dir := &identity.BaseDirectory{PLCURL: p.PLCURL, SkipHandleVerification: true}
	get := func(token string, kv ...string) *testpds.Response {
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return p.Query("com.atproto.server.getServiceAuth", q, token)
	}
	tokenOf := func(r *testpds.Response) string {
		t.Helper()
		testpds.WantStatus(t, r, 200, "")
		tok, _ := r.JSON()["token"].(string)
		return tok
	}
	ctx := context.Background()

	// Default: 60 s, bound to the method; a service verifies it against the DID document.
	tok := tokenOf(get(alice.AccessJwt, "aud", "did:web:video.example", "lxm", "com.atproto.repo.uploadBlob"))
	iss, claims, err := testservice.Verify(ctx, dir, tok, "did:web:video.example", "com.atproto.repo.uploadBlob")
	if err != nil || iss != alice.DID {
		t.Fatalf("verify: %v (iss %s)", err, iss)
	}
	if life := testpds.ClaimInt(t, claims, "exp") - testpds.ClaimInt(t, claims, "iat"); life != 60 {
		t.Fatalf("default lifetime %d s", life)
	}
	if _, _, err := testservice.Verify(ctx, dir, tok, "did:web:video.example", "com.atproto.repo.createRecord"); err == nil {
		t.Fatal("token accepted for another method")
	}
	if _, _, err := testservice.Verify(ctx, dir, tok, "did:web:other.example", "com.atproto.repo.uploadBlob"); err == nil {
		t.Fatal("token accepted by another service")
	}

	// An explicit exp up to an hour with a method; the claim is exactly what was asked.
	exp := time.Now().Add(30 * time.Minute).Unix()
	tok = tokenOf(get(alice.AccessJwt, "aud", "did:web:video.example#svc", "lxm", "com.atproto.server.createAccount", "exp", strconv.FormatInt(exp, 10)))
	claims = testpds.TokenClaims(t, tok)
	if testpds.ClaimInt(t, claims, "exp") != exp || claims["aud"] != "did:web:video.example#svc" || claims["iss"] != alice.DID || claims["jti"] == nil {
		t.Fatalf("claims: %v", claims)
	}
	// Without lxm: any method, at most a minute.
	tok = tokenOf(get(alice.AccessJwt, "aud", alice.DID, "exp", strconv.FormatInt(time.Now().Add(30*time.Second).Unix(), 10)))
	if c := testpds.TokenClaims(t, tok); c["lxm"] != nil {
		t.Fatalf("method-less token has lxm: %v", c)
	}
	if _, _, err := testservice.Verify(ctx, dir, tok, alice.DID, ""); err != nil {
		t.Fatalf("method-less token: %v", err)
	}

	for _, c := range []struct {
		kv      []string
		errName string
		msg     string
	}{
		{[]string{"aud", "did:web:x.example", "lxm", "com.atproto.repo.uploadBlob", "exp", strconv.FormatInt(time.Now().Add(2*time.Hour).Unix(), 10)}, "BadExpiration", "more than an hour"},
		{[]string{"aud", "did:web:x.example", "lxm", "com.atproto.repo.uploadBlob", "exp", strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)}, "BadExpiration", "in past"},
		{[]string{"aud", "did:web:x.example", "exp", strconv.FormatInt(time.Now().Add(5*time.Minute).Unix(), 10)}, "BadExpiration", "method-less"},
		{[]string{"aud", "not-a-did"}, "InvalidRequest", "aud must be"},
		{[]string{"aud", "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"}, "InvalidRequest", "aud must be"},
		{[]string{"aud", "did:web:x.example#"}, "InvalidRequest", "aud must be"},
		{[]string{"aud", "did:web:x.example", "lxm", "com.atproto.server.createAppPassword"}, "InvalidRequest", "protected method"},
		{[]string{"aud", "did:web:x.example", "lxm", "com.atproto.identity.signPlcOperation"}, "InvalidRequest", "protected method"},
		{[]string{"lxm", "com.atproto.repo.uploadBlob"}, "InvalidRequest", ""},
	} {
		r := get(alice.AccessJwt, c.kv...)
		testpds.WantStatus(t, r, 400, c.errName)
		if msg, _ := r.JSON()["message"].(string); !strings.Contains(msg, c.msg) {
			t.Errorf("%v: message %q, want %q", c.kv, msg, c.msg)
		}
	}
	testpds.WantStatus(t, get("", "aud", "did:web:x.example"), 401, "AuthMissing")

	// Privileged methods need a privileged session.
	plain := testpds.AppPasswordSession(t, p, alice, "plain", false)
	priv := testpds.AppPasswordSession(t, p, alice, "priv", true)
	r := get(plain, "aud", "did:web:chat.example", "lxm", "chat.bsky.convo.sendMessage")
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "insufficient access") {
		t.Fatalf("plain app password: %s", r)
	}
	tokenOf(get(priv, "aud", "did:web:chat.example", "lxm", "chat.bsky.convo.sendMessage"))
	tokenOf(get(plain, "aud", "did:web:video.example", "lxm", "app.bsky.video.getUploadLimits"))

	// A taken-down account may only get a token to create its account elsewhere (migration).
	carol := p.CreateAccount("carol")
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject":  map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": carol.DID},
		"takedown": map[string]any{"applied": true, "ref": "test"},
	}))
	td := testpds.MustOK(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": carol.Handle, "password": carol.Password, "allowTakendown": true}, ""))
	tdTok, _ := td["accessJwt"].(string)
	tok = tokenOf(get(tdTok, "aud", "did:web:newpds.example", "lxm", "com.atproto.server.createAccount"))
	if c := testpds.TokenClaims(t, tok); c["iss"] != carol.DID || c["lxm"] != "com.atproto.server.createAccount" {
		t.Fatalf("takendown createAccount token: %v", c)
	}
	testpds.WantStatus(t, get(tdTok, "aud", "did:web:newpds.example", "lxm", "com.atproto.repo.uploadBlob"), 400, "InvalidToken")
	testpds.WantStatus(t, get(tdTok, "aud", "did:web:newpds.example"), 400, "InvalidToken")
	// Nor can it use proxied services (refused before the named service is even resolved).
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, tdTok,
		map[string]string{"atproto-proxy": "did:web:appview.example#bsky_appview"}), 400, "InvalidToken")
}
