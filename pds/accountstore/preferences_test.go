package accountstore

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

func TestPreferencesNamespaces(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, did := range []syntax.DID{"did:plc:prefs1", "did:plc:prefs2"} {
		if err := s.CreateAccount(ctx, &Account{DID: did, Handle: did.String()[8:] + ".test", PasswordHash: "x",
			SigningKey: []byte{1}, CreatedAt: time.Now()}, ""); err != nil {
			t.Fatal(err)
		}
	}
	pref := func(name, extra string) Preference {
		return Preference{Name: name, Value: json.RawMessage(`{"$type":"` + name + `"` + extra + `}`)}
	}
	names := func(ps []Preference) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	// Another namespace's preferences, and a name that only shares a prefix with app.bsky.
	if err := s.PutPreferences(ctx, "did:plc:prefs1", "com.example", []Preference{pref("com.example.a", "")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPreferences(ctx, "did:plc:prefs1", "app.bskyx", []Preference{pref("app.bskyx.b", "")}, nil); err != nil {
		t.Fatal(err)
	}
	first := []Preference{pref("app.bsky.actor.defs#adultContentPref", `,"enabled":true`),
		pref("app.bsky.actor.defs#personalDetailsPref", `,"birthDate":"2000-01-01T00:00:00.000Z"`),
		pref("app.bsky.actor.defs#savedFeedsPrefV2", `,"items":[]`)}
	if err := s.PutPreferences(ctx, "did:plc:prefs1", "app.bsky", first, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Preferences(ctx, "did:plc:prefs1", "app.bsky")
	if err != nil || len(got) != 3 || string(got[0].Value) != string(first[0].Value) || got[2].Name != first[2].Name {
		t.Fatalf("round trip: %v %v", names(got), err)
	}
	// Replace, keeping personalDetailsPref (a caller without full access may not touch it).
	second := []Preference{pref("app.bsky.actor.defs#contentLabelPref", `,"label":"x","visibility":"hide"`)}
	if err := s.PutPreferences(ctx, "did:plc:prefs1", "app.bsky", second, []string{"app.bsky.actor.defs#personalDetailsPref"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Preferences(ctx, "did:plc:prefs1", "app.bsky")
	if n := names(got); len(n) != 2 || n[0] != "app.bsky.actor.defs#personalDetailsPref" || n[1] != "app.bsky.actor.defs#contentLabelPref" {
		t.Fatalf("after replace: %v", n)
	}
	// Other namespaces and other accounts are untouched.
	if got, _ := s.Preferences(ctx, "did:plc:prefs1", "com.example"); len(got) != 1 {
		t.Fatalf("com.example prefs: %v", names(got))
	}
	if got, _ := s.Preferences(ctx, "did:plc:prefs1", "app.bskyx"); len(got) != 1 {
		t.Fatalf("app.bskyx prefs: %v", names(got))
	}
	if got, _ := s.Preferences(ctx, "did:plc:prefs2", "app.bsky"); len(got) != 0 {
		t.Fatalf("other account sees prefs: %v", names(got))
	}
	// Empty put clears the namespace; deleting the account deletes its preferences.
	if err := s.PutPreferences(ctx, "did:plc:prefs1", "app.bsky", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Preferences(ctx, "did:plc:prefs1", "app.bsky"); len(got) != 0 {
		t.Fatalf("cleared: %v", names(got))
	}
	if err := s.DeleteAccount(ctx, "did:plc:prefs1"); err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.QueryRow("SELECT count(*) FROM account_pref").Scan(&n)
	if n != 0 {
		t.Fatalf("%d preference rows left after account deletion", n)
	}
}
