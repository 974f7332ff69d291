package accountstore

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Preference is one stored preference: Name is its $type, Value the whole JSON object.
type Preference struct {
	Name  string
	Value json.RawMessage
}

// inNamespace reports whether a preference name belongs to namespace ("app.bsky" holds "app.bsky" and
// "app.bsky.*", not "app.bskyx").
func inNamespace(namespace, name string) bool {
	return name == namespace || strings.HasPrefix(name, namespace+".")
}

// Preferences returns the account's preferences in namespace, in the order they were stored.
func (s *Store) Preferences(ctx context.Context, did syntax.DID, namespace string) ([]Preference, error) {
	all, err := s.AllPreferences(ctx, did)
	if err != nil {
		return nil, err
	}
	out := []Preference{}
	for _, p := range all {
		if inNamespace(namespace, p.Name) {
			out = append(out, p)
		}
	}
	return out, nil
}

// PutPreferences replaces, in one transaction, the account's preferences in namespace with prefs, except the
// stored ones whose name is in keep (those the caller may not change). Preferences of other namespaces are
// untouched. Every pref must be in namespace (the caller checks it, with its own error message).
func (s *Store) PutPreferences(ctx context.Context, did syntax.DID, namespace string, prefs []Preference, keep []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT id, name FROM account_pref WHERE did = ?", did)
	if err != nil {
		return err
	}
	var drop []int64
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return err
		}
		if inNamespace(namespace, name) && !slices.Contains(keep, name) {
			drop = append(drop, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range drop {
		if _, err := tx.ExecContext(ctx, "DELETE FROM account_pref WHERE id = ?", id); err != nil {
			return err
		}
	}
	for _, p := range prefs {
		if _, err := tx.ExecContext(ctx, "INSERT INTO account_pref (did, name, value_json) VALUES (?, ?, ?)",
			did, p.Name, string(p.Value)); err != nil {
			return err
		}
	}
	return tx.Commit()
}
