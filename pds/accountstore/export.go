package accountstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// What an operator's account archive (pds account export / import) carries beyond the account row.

// AppPasswordHash is an app password with its hash, for moving an account to another server of the operator.
type AppPasswordHash struct {
	Name         string
	PasswordHash string
	Privileged   bool
	CreatedAt    time.Time
}

// AppPasswordHashes returns the account's app passwords with their hashes.
func (s *Store) AppPasswordHashes(ctx context.Context, did syntax.DID) ([]AppPasswordHash, error) {
	return queryRows(ctx, s.db, func(row rowScanner) (AppPasswordHash, error) {
		var ap AppPasswordHash
		var created string
		if err := row.Scan(&ap.Name, &ap.PasswordHash, &ap.Privileged, &created); err != nil {
			return ap, err
		}
		ap.CreatedAt, _ = time.Parse(timeFormat, created)
		return ap, nil
	}, "SELECT name, password_hash, privileged, created_at FROM app_password WHERE did = ? ORDER BY name", did)
}

// AllPreferences returns every stored preference of the account, of every namespace, in stored order.
func (s *Store) AllPreferences(ctx context.Context, did syntax.DID) ([]Preference, error) {
	return orEmpty(queryRows(ctx, s.db, scanPreference, "SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY id", did))
}

func scanPreference(row rowScanner) (Preference, error) {
	var p Preference
	var v string
	if err := row.Scan(&p.Name, &v); err != nil {
		return p, err
	}
	p.Value = json.RawMessage(v)
	return p, nil
}

// ReplaceAllPreferences replaces every preference of the account with prefs, in one transaction.
func (s *Store) ReplaceAllPreferences(ctx context.Context, did syntax.DID, prefs []Preference) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM account_pref WHERE did = ?", did); err != nil {
		return err
	}
	for _, p := range prefs {
		if _, err := tx.ExecContext(ctx, "INSERT INTO account_pref (did, name, value_json) VALUES (?, ?, ?)", did, p.Name, string(p.Value)); err != nil {
			return err
		}
	}
	return tx.Commit()
}
