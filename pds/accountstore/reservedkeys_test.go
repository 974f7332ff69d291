package accountstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

func TestReservedSigningKeys(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	res := func(keyDID, did string, ttl time.Duration) *ReservedKey {
		t.Helper()
		k, err := s.ReserveSigningKey(ctx, ReservedKey{KeyDID: keyDID, DID: didOf(did), PrivateKey: []byte(keyDID),
			CreatedAt: now, ExpiresAt: now.Add(ttl)})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lookup := func(did, keyDID string) string {
		t.Helper()
		k, err := s.ReservedSigningKey(ctx, didOf(did), keyDID)
		if errors.Is(err, ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return k.KeyDID
	}

	// A DID keeps its first key; a second reservation for it returns the first.
	if k := res("did:key:a1", "did:plc:alice", time.Hour); k.KeyDID != "did:key:a1" {
		t.Fatalf("first reservation: %s", k.KeyDID)
	}
	if k := res("did:key:a2", "did:plc:alice", time.Hour); k.KeyDID != "did:key:a1" || string(k.PrivateKey) != "did:key:a1" {
		t.Fatalf("second reservation for the same DID: %s, want the first key", k.KeyDID)
	}
	res("did:key:u1", "", time.Hour)
	for _, c := range []struct{ did, key, want string }{
		{"did:plc:alice", "", "did:key:a1"},
		{"did:plc:alice", "did:key:u1", "did:key:a1"}, // the DID's own reservation first
		{"did:plc:bob", "did:key:u1", "did:key:u1"},   // else the unbound key the operation names
		{"", "did:key:u1", "did:key:u1"},
		{"did:plc:bob", "did:key:a1", ""}, // alice's key is not bob's to take
		{"did:plc:bob", "did:key:a2", ""}, // never stored
		{"did:plc:bob", "", ""},
	} {
		if got := lookup(c.did, c.key); got != c.want {
			t.Errorf("lookup(%q, %q) = %q, want %q", c.did, c.key, got, c.want)
		}
	}

	// Expiry: an expired reservation is not found, and the next reservation deletes it.
	res("did:key:short", "", time.Minute)
	now = now.Add(2 * time.Minute)
	if got := lookup("", "did:key:short"); got != "" {
		t.Fatalf("expired reservation found: %s", got)
	}
	res("did:key:u2", "", time.Hour)
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM reserved_signing_key WHERE key_did = 'did:key:short'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("expired row kept (%d, %v)", n, err)
	}
	// An expired DID reservation gives way to a new key.
	now = now.Add(2 * time.Hour)
	if k := res("did:key:a3", "did:plc:alice", time.Hour); k.KeyDID != "did:key:a3" {
		t.Fatalf("reservation after expiry: %s, want the new key", k.KeyDID)
	}

	// Clearing removes the key's row and the DID's.
	res("did:key:u3", "", time.Hour)
	if err := s.ClearReservedSigningKey(ctx, "did:key:u3", "did:plc:alice"); err != nil {
		t.Fatal(err)
	}
	if lookup("", "did:key:u3") != "" || lookup("did:plc:alice", "") != "" {
		t.Fatal("a cleared reservation is still found")
	}
}

func didOf(s string) syntax.DID { return syntax.DID(s) }
