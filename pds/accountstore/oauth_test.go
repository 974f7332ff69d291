package accountstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestOAuthRequestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	addAccount(t, s, "did:plc:alice", "alice.test")
	exp := time.Now().Add(5 * time.Minute)
	if err := s.CreateOAuthRequest(ctx, &OAuthRequest{ID: "req-1", ClientID: "c", ClientAuth: "none", DPoPJKT: "jkt", Params: "{}", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	// The first browser owns the request; a second one is refused.
	if _, err := s.OpenOAuthRequest(ctx, "req-1", "dev-a", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenOAuthRequest(ctx, "req-1", "dev-a", exp); err != nil {
		t.Fatalf("same browser again: %v", err)
	}
	if _, err := s.OpenOAuthRequest(ctx, "req-1", "dev-b", exp); !errors.Is(err, ErrOAuthRequestUsed) {
		t.Fatalf("other browser: %v", err)
	}
	if err := s.ApproveOAuthRequest(ctx, "req-1", "dev-b", "did:plc:alice", "cod-x", exp); !errors.Is(err, ErrOAuthRequestUsed) {
		t.Fatalf("approve from other browser: %v", err)
	}
	if err := s.ApproveOAuthRequest(ctx, "req-1", "dev-a", "did:plc:alice", "cod-x", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.ApproveOAuthRequest(ctx, "req-1", "dev-a", "did:plc:alice", "cod-y", exp); !errors.Is(err, ErrOAuthRequestUsed) {
		t.Fatalf("second approval: %v", err)
	}
	if _, err := s.OpenOAuthRequest(ctx, "req-1", "dev-a", exp); !errors.Is(err, ErrOAuthRequestUsed) {
		t.Fatalf("open approved: %v", err)
	}
	if _, err := s.ConsumeOAuthCode(ctx, "cod-wrong"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrong code: %v", err)
	}
	r, err := s.ConsumeOAuthCode(ctx, "cod-x")
	if err != nil || r.DID != "did:plc:alice" || r.DPoPJKT != "jkt" {
		t.Fatalf("consume: %+v %v", r, err)
	}
	now := time.Now()
	sess := &OAuthSession{ID: "ses-1", DID: "did:plc:alice", ClientID: "c", ClientAuth: "none", Scope: "atproto", DPoPJKT: "jkt",
		TokenID: "tok-1", CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}
	if err := s.CreateOAuthSession(ctx, sess, "ref-1", "cod-x"); err != nil {
		t.Fatal(err)
	}
	// A replayed code revokes the session it started.
	if _, err := s.ConsumeOAuthCode(ctx, "cod-x"); !errors.Is(err, ErrOAuthReplay) {
		t.Fatalf("replayed code: %v", err)
	}
	if _, err := s.OAuthSessionByTokenID(ctx, "tok-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session after code replay: %v", err)
	}
}

func TestOAuthRefreshRotation(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	addAccount(t, s, "did:plc:alice", "alice.test")
	now := time.Now()
	sess := &OAuthSession{ID: "ses-1", DID: "did:plc:alice", ClientID: "c", ClientAuth: "none", Scope: "atproto", DPoPJKT: "jkt",
		TokenID: "tok-1", CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)}
	if err := s.CreateOAuthSession(ctx, sess, "ref-1", ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.OAuthSessionByRefresh(ctx, "ref-1")
	if err != nil || got.ID != "ses-1" {
		t.Fatalf("by refresh: %+v %v", got, err)
	}
	if err := s.RotateOAuthRefresh(ctx, "ses-1", "ref-1", "ref-2", "tok-2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OAuthSessionByTokenID(ctx, "tok-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old access token id still live: %v", err)
	}
	if got, err := s.OAuthSessionByTokenID(ctx, "tok-2"); err != nil || got.ID != "ses-1" {
		t.Fatalf("new token id: %v", err)
	}
	// A racing second rotation with the old token fails and ends the session.
	if err := s.RotateOAuthRefresh(ctx, "ses-1", "ref-1", "ref-3", "tok-3", now.Add(time.Hour)); !errors.Is(err, ErrOAuthReplay) {
		t.Fatalf("racing rotation: %v", err)
	}
	if _, err := s.OAuthSessionByRefresh(ctx, "ref-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session after race: %v", err)
	}

	// Replay of a rotated token (sequential) revokes the session.
	sess.ID, sess.TokenID = "ses-2", "tok-20"
	if err := s.CreateOAuthSession(ctx, sess, "ref-20", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateOAuthRefresh(ctx, "ses-2", "ref-20", "ref-21", "tok-21", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OAuthSessionByRefresh(ctx, "ref-20"); !errors.Is(err, ErrOAuthReplay) {
		t.Fatalf("replayed refresh: %v", err)
	}
	if _, err := s.OAuthSessionByRefresh(ctx, "ref-21"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current refresh after replay: %v", err)
	}

	// Revoke by DID; account deletion cascades.
	for i, id := range []string{"ses-3", "ses-4"} {
		sess.ID, sess.TokenID = id, "tok-"+id
		if err := s.CreateOAuthSession(ctx, sess, "ref-"+id, ""); err != nil {
			t.Fatal(err, i)
		}
	}
	list, err := s.OAuthSessions(ctx, "did:plc:alice")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if _, err := s.DeleteOAuthSession(ctx, "ses-3", "did:plc:bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke someone else's session: %v", err)
	}
	ids, err := s.DeleteOAuthSessionsForDID(ctx, "did:plc:alice")
	if err != nil || len(ids) != 2 {
		t.Fatalf("revoke all: %v %v", ids, err)
	}
	sess.ID, sess.TokenID = "ses-5", "tok-5"
	if err := s.CreateOAuthSession(ctx, sess, "ref-5", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "did:plc:alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OAuthSessionByTokenID(ctx, "tok-5"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session after account deletion: %v", err)
	}
}

func TestOAuthOnceAndDevices(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	addAccount(t, s, "did:plc:alice", "alice.test")
	fresh, err := s.UseOAuthOnce(ctx, "jti", "a", time.Now().Add(time.Minute))
	if err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, _ := s.UseOAuthOnce(ctx, "jti", "a", time.Now().Add(time.Minute)); fresh {
		t.Fatal("second use reported fresh")
	}
	if fresh, _ := s.UseOAuthOnce(ctx, "code_challenge", "a", time.Now().Add(time.Minute)); !fresh {
		t.Fatal("kinds are separate")
	}
	// An expired entry can be used again.
	if fresh, _ := s.UseOAuthOnce(ctx, "jti", "b", time.Now().Add(-time.Second)); !fresh {
		t.Fatal("b first use")
	}
	if fresh, _ := s.UseOAuthOnce(ctx, "jti", "b", time.Now().Add(time.Minute)); !fresh {
		t.Fatal("expired entry not reusable")
	}

	if err := s.TouchOAuthDevice(ctx, "dev-secret", "ua", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOAuthDeviceAccount(ctx, "dev-secret", "did:plc:alice"); err != nil {
		t.Fatal(err)
	}
	dids, err := s.OAuthDeviceAccounts(ctx, "dev-secret", time.Now().Add(-time.Hour))
	if err != nil || len(dids) != 1 || dids[0] != "did:plc:alice" {
		t.Fatalf("device accounts: %v %v", dids, err)
	}
	if dids, _ := s.OAuthDeviceAccounts(ctx, "other", time.Now().Add(-time.Hour)); len(dids) != 0 {
		t.Fatalf("other device sees %v", dids)
	}
	if err := s.PruneOAuth(ctx, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if dids, _ := s.OAuthDeviceAccounts(ctx, "dev-secret", time.Now().Add(-time.Hour)); len(dids) != 1 {
		t.Fatal("prune removed a fresh device")
	}
	// Sign-ins older than the cutoff go; the device stays.
	if err := s.PruneOAuth(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if dids, _ := s.OAuthDeviceAccounts(ctx, "dev-secret", time.Now().Add(-time.Hour)); len(dids) != 0 {
		t.Fatal("prune kept an old sign-in")
	}
	if err := s.AddOAuthDeviceAccount(ctx, "dev-secret", "did:plc:alice"); err != nil {
		t.Fatalf("device row pruned with its sign-in: %v", err)
	}
	if err := s.PruneOAuth(ctx, time.Now().Add(time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if dids, _ := s.OAuthDeviceAccounts(ctx, "dev-secret", time.Now().Add(-time.Hour)); len(dids) != 0 {
		t.Fatal("prune kept a stale device")
	}
}

// TestOAuthSecretsHashed: no code, refresh token or device secret is written to the file in clear.
func TestOAuthSecretsHashed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir+"/account.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	addAccount(t, s, "did:plc:alice", "alice.test")
	exp := time.Now().Add(time.Minute)
	s.CreateOAuthRequest(ctx, &OAuthRequest{ID: "req-1", ClientID: "c", ClientAuth: "none", DPoPJKT: "j", Params: "{}", ExpiresAt: exp})
	s.OpenOAuthRequest(ctx, "req-1", "SECRETDEVICE1234", exp)
	if err := s.ApproveOAuthRequest(ctx, "req-1", "SECRETDEVICE1234", "did:plc:alice", "SECRETCODE5678", exp); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.CreateOAuthSession(ctx, &OAuthSession{ID: "ses-1", DID: "did:plc:alice", ClientID: "c", ClientAuth: "none",
		Scope: "atproto", DPoPJKT: "j", TokenID: "tok-1", CreatedAt: now, UpdatedAt: now, ExpiresAt: exp, RefreshExpiresAt: exp},
		"SECRETREFRESH9012", "SECRETCODE0000"); err != nil {
		t.Fatal(err)
	}
	s.TouchOAuthDevice(ctx, "SECRETDEVICE1234", "ua", "ip")
	s.Close()
	var all []byte
	for _, f := range []string{"account.sqlite", "account.sqlite-wal"} {
		b, _ := os.ReadFile(dir + "/" + f)
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte("req-1")) {
		t.Fatal("control: the request id should be in the file")
	}
	for _, secret := range []string{"SECRETDEVICE1234", "SECRETCODE5678", "SECRETREFRESH9012", "SECRETCODE0000"} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("%s stored in clear", secret)
		}
	}
}
