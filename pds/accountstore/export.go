package accountstore

import (
	"context"
	"encoding/json"
	"time"
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
func (s *Store) AppPasswordHashes(ctx context.Context, did string) ([]AppPasswordHash, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, password_hash, privileged, created_at FROM app_password WHERE did = ? ORDER BY name", did)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AppPasswordHash
	for rows.Next() {
		var ap AppPasswordHash
		var created string
		if err := rows.Scan(&ap.Name, &ap.PasswordHash, &ap.Privileged, &created); err != nil {
			return nil, err
		}
		ap.CreatedAt, _ = time.Parse(timeFormat, created)
		out = append(out, ap)
	}
	return out, rows.Err()
}

// AllPreferences returns every stored preference of the account, of every namespace, in stored order.
func (s *Store) AllPreferences(ctx context.Context, did string) ([]Preference, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY id", did)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Preference{}
	for rows.Next() {
		var p Preference
		var v string
		if err := rows.Scan(&p.Name, &v); err != nil {
			return nil, err
		}
		p.Value = json.RawMessage(v)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ReplaceAllPreferences replaces every preference of the account with prefs, in one transaction.
func (s *Store) ReplaceAllPreferences(ctx context.Context, did string, prefs []Preference) error {
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
