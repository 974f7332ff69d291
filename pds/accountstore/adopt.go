package accountstore

import (
	"context"
	"database/sql"
	"fmt"
)

// Adopting accounts: the takeover of another server's data directory (package takeover) fills a new account
// database with accounts as they were there, hashes, keys, states and timestamps unchanged.

// AdoptedAccount is an account with everything of it this store keeps.
type AdoptedAccount struct {
	Account         Account
	AppPasswords    []AppPasswordHash
	RefreshTokens   []RefreshToken
	Preferences     []Preference
	RecordTakedowns []Takedown // URI, CID, Ref
	BlobTakedowns   []Takedown // CID, Ref
}

// AdoptAccounts inserts accounts as they are, in one transaction (a failure inserts none of them). Meant for a
// database that a takeover is filling, not for a live server's.
func (s *Store) AdoptAccounts(ctx context.Context, accts []AdoptedAccount) error {
	defer func() {
		for i := range accts {
			s.changed(accts[i].Account.DID)
		}
	}()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmts := map[string]*sql.Stmt{}
	stmt := func(q string) (*sql.Stmt, error) {
		if st := stmts[q]; st != nil {
			return st, nil
		}
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		stmts[q] = st
		return st, nil
	}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	exec := func(q string, args ...any) error {
		st, err := stmt(q)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, args...)
		return err
	}
	for i := range accts {
		aa := &accts[i]
		a := &aa.Account
		err := exec(`INSERT INTO account (did, handle, email, password_hash, signing_key, created_at, email_confirmed_at,
			deactivated_at, delete_after, takedown_ref, invites_disabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.DID, a.Handle, nullString(a.Email), a.PasswordHash, a.SigningKey, a.CreatedAt.UTC().Format(timeFormat),
			fmtTime(a.EmailConfirmedAt), fmtTime(a.DeactivatedAt), fmtTime(a.DeleteAfter), nullString(a.TakedownRef), a.InvitesDisabled)
		if err != nil {
			return fmt.Errorf("account %s: %w", a.DID, uniqueErr(err))
		}
		for _, ap := range aa.AppPasswords {
			if err := exec(`INSERT INTO app_password (did, name, password_hash, privileged, created_at) VALUES (?, ?, ?, ?, ?)`,
				a.DID, ap.Name, ap.PasswordHash, ap.Privileged, ap.CreatedAt.UTC().Format(timeFormat)); err != nil {
				return fmt.Errorf("account %s: app password %q: %w", a.DID, ap.Name, err)
			}
		}
		for _, t := range aa.RefreshTokens {
			if err := exec(`INSERT INTO refresh_token (id, did, expires_at, app_password_name, next_id) VALUES (?, ?, ?, ?, ?)`,
				t.ID, a.DID, t.ExpiresAt.Unix(), nullString(t.AppPasswordName), nullString(t.NextID)); err != nil {
				return fmt.Errorf("account %s: refresh token: %w", a.DID, err)
			}
		}
		for _, p := range aa.Preferences {
			if err := exec("INSERT INTO account_pref (did, name, value_json) VALUES (?, ?, ?)", a.DID, p.Name, string(p.Value)); err != nil {
				return fmt.Errorf("account %s: preference: %w", a.DID, err)
			}
		}
		now := s.clock().UTC().Format(timeFormat)
		for _, t := range aa.RecordTakedowns {
			if err := exec(`INSERT INTO record_takedown (uri, did, cid, takedown_ref, created_at) VALUES (?, ?, ?, ?, ?)`,
				t.URI, a.DID, t.CID, t.Ref, now); err != nil {
				return fmt.Errorf("account %s: record takedown %s: %w", a.DID, t.URI, err)
			}
		}
		for _, t := range aa.BlobTakedowns {
			if err := exec(`INSERT INTO blob_takedown (did, cid, takedown_ref, created_at) VALUES (?, ?, ?, ?)`,
				a.DID, t.CID, t.Ref, now); err != nil {
				return fmt.Errorf("account %s: blob takedown %s: %w", a.DID, t.CID, err)
			}
		}
	}
	return tx.Commit()
}

// AdoptInviteCodes inserts invite codes with their uses as they are, in one transaction.
func (s *Store) AdoptInviteCodes(ctx context.Context, codes []*InviteCode) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range codes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO invite_code (`+inviteColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			c.Code, c.Available, c.Disabled, c.ForAccount, c.CreatedBy, c.CreatedAt.UTC().Format(timeFormat)); err != nil {
			return fmt.Errorf("invite code %s: %w", c.Code, err)
		}
		for _, u := range c.Uses {
			if _, err := tx.ExecContext(ctx, "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)",
				c.Code, u.UsedBy, u.UsedAt.UTC().Format(timeFormat)); err != nil {
				return fmt.Errorf("invite code %s: use by %s: %w", c.Code, u.UsedBy, err)
			}
		}
	}
	return tx.Commit()
}
