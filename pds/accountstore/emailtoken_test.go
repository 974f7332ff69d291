package accountstore

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addAccount(t *testing.T, s *Store, did syntax.DID, handle string) {
	t.Helper()
	err := s.CreateAccount(context.Background(), &Account{DID: did, Handle: handle, Email: handle + "@example.com",
		PasswordHash: "x", SigningKey: []byte{1}, CreatedAt: time.Now()}, "")
	if err != nil {
		t.Fatal(err)
	}
}

func TestEmailTokens(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	addAccount(t, s, "did:plc:alice", "alice.test")
	addAccount(t, s, "did:plc:bob", "bob.test")
	now := time.Now()
	s.now = func() time.Time { return now }

	tok, err := s.CreateEmailToken(ctx, "did:plc:alice", PurposeConfirmEmail)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}$`).MatchString(tok) {
		t.Fatalf("token shape: %q", tok)
	}
	// Another purpose or another account does not accept it.
	if err := s.CheckEmailToken(ctx, "did:plc:alice", PurposeUpdateEmail, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("other purpose: %v", err)
	}
	if err := s.ConsumeEmailToken(ctx, "did:plc:bob", PurposeConfirmEmail, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("other account: %v", err)
	}
	// A new request replaces the old token.
	tok2, err := s.CreateEmailToken(ctx, "did:plc:alice", PurposeConfirmEmail)
	if err != nil {
		t.Fatal(err)
	}
	if tok2 != tok {
		if err := s.CheckEmailToken(ctx, "did:plc:alice", PurposeConfirmEmail, tok); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("replaced token still valid: %v", err)
		}
	}
	// Case-insensitive, single use.
	if err := s.ConsumeEmailToken(ctx, "did:plc:alice", PurposeConfirmEmail, " "+strings.ToLower(tok2)+" "); err != nil {
		t.Fatal(err)
	}
	if err := s.ConsumeEmailToken(ctx, "did:plc:alice", PurposeConfirmEmail, tok2); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("second use: %v", err)
	}

	// Expiry at 15 minutes.
	tok3, _ := s.CreateEmailToken(ctx, "did:plc:bob", PurposeResetPassword)
	now = now.Add(EmailTokenTTL - time.Second)
	if err := s.CheckEmailToken(ctx, "did:plc:bob", PurposeResetPassword, tok3); err != nil {
		t.Fatalf("token before expiry: %v", err)
	}
	now = now.Add(2 * time.Second)
	if did, err := s.ConsumeEmailTokenByValue(ctx, PurposeResetPassword, tok3); !errors.Is(err, ErrExpiredToken) || did != "did:plc:bob" {
		t.Fatalf("expired token: %q %v", did, err)
	}
	// By value, fresh.
	tok4, _ := s.CreateEmailToken(ctx, "did:plc:bob", PurposeResetPassword)
	if did, err := s.ConsumeEmailTokenByValue(ctx, PurposeResetPassword, tok4); err != nil || did != "did:plc:bob" {
		t.Fatalf("by value: %q %v", did, err)
	}
	if _, err := s.CreateEmailToken(ctx, "did:plc:nobody", PurposeConfirmEmail); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	// Deleting the account drops its tokens.
	tok5, _ := s.CreateEmailToken(ctx, "did:plc:bob", PurposeDeleteAccount)
	if err := s.DeleteAccount(ctx, "did:plc:bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeEmailTokenByValue(ctx, PurposeDeleteAccount, tok5); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of deleted account: %v", err)
	}
}
