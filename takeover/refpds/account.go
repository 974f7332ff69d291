package refpds

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Actor is an account of account.sqlite: its actor row and, when it has one, its account row.
type Actor struct {
	DID           string
	Handle        string // "" when the actor has none
	CreatedAt     time.Time
	TakedownRef   string
	DeactivatedAt *time.Time
	DeleteAfter   *time.Time

	HasAccount       bool // an account row (email, password); the reference makes one for every account it hosts
	Email            string
	PasswordScrypt   string // "<hex salt>:<hex scrypt>", as this server's
	EmailConfirmedAt *time.Time
	InvitesDisabled  bool
}

// Actors returns every actor, in DID order.
func (d *Dir) Actors(ctx context.Context) ([]Actor, error) {
	rows, err := d.account.QueryContext(ctx, `SELECT a.did, a.handle, a.createdAt, a.takedownRef, a.deactivatedAt, a.deleteAfter,
		c.did IS NOT NULL, c.email, c.passwordScrypt, c.emailConfirmedAt, coalesce(c.invitesDisabled, 0)
		FROM actor a LEFT JOIN account c ON c.did = a.did ORDER BY a.did`)
	if err != nil {
		return nil, fmt.Errorf("account.sqlite: %w", err)
	}
	defer rows.Close()
	var out []Actor
	for rows.Next() {
		var a Actor
		var handle, takedown, deactivated, deleteAfter, email, password, confirmed sql.NullString
		var created string
		if err := rows.Scan(&a.DID, &handle, &created, &takedown, &deactivated, &deleteAfter,
			&a.HasAccount, &email, &password, &confirmed, &a.InvitesDisabled); err != nil {
			return nil, fmt.Errorf("account.sqlite: %w", err)
		}
		a.Handle, a.TakedownRef, a.Email, a.PasswordScrypt = handle.String, takedown.String, email.String, password.String
		t, err := time.Parse(time.RFC3339Nano, created)
		if err != nil {
			return nil, fmt.Errorf("account.sqlite: actor %s: createdAt %q: %w", a.DID, created, err)
		}
		a.CreatedAt = t
		for _, p := range []struct {
			dst **time.Time
			v   sql.NullString
		}{{&a.DeactivatedAt, deactivated}, {&a.DeleteAfter, deleteAfter}, {&a.EmailConfirmedAt, confirmed}} {
			if *p.dst, err = parseTime(p.v); err != nil {
				return nil, fmt.Errorf("account.sqlite: actor %s: %w", a.DID, err)
			}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ActorExists reports whether account.sqlite has an actor row for did.
func (d *Dir) ActorExists(ctx context.Context, did string) (bool, error) {
	var n int
	if err := d.account.QueryRowContext(ctx, "SELECT count(*) FROM actor WHERE did = ?", did).Scan(&n); err != nil {
		return false, fmt.Errorf("account.sqlite: %w", err)
	}
	return n > 0, nil
}

// AppPassword is an app password of account.sqlite.
type AppPassword struct {
	DID, Name      string
	PasswordScrypt string // scrypt with a salt derived from the DID, as this server's
	Privileged     bool
	CreatedAt      time.Time
}

// AppPasswords returns every app password.
func (d *Dir) AppPasswords(ctx context.Context) ([]AppPassword, error) {
	return query(ctx, d.account, "account.sqlite", "SELECT did, name, passwordScrypt, privileged, createdAt FROM app_password ORDER BY did, name",
		func(r *sql.Rows) (AppPassword, error) {
			var ap AppPassword
			var created string
			if err := r.Scan(&ap.DID, &ap.Name, &ap.PasswordScrypt, &ap.Privileged, &created); err != nil {
				return ap, err
			}
			return ap, parseInto(&ap.CreatedAt, created)
		})
}

// RefreshToken is a stored session of account.sqlite (its JWT carries ID as jti).
type RefreshToken struct {
	ID, DID         string
	ExpiresAt       time.Time
	AppPasswordName string
	NextID          string
}

// RefreshTokens returns the refresh tokens that expire after now.
func (d *Dir) RefreshTokens(ctx context.Context, now time.Time) ([]RefreshToken, error) {
	all, err := query(ctx, d.account, "account.sqlite", "SELECT id, did, expiresAt, appPasswordName, nextId FROM refresh_token ORDER BY did, id",
		func(r *sql.Rows) (RefreshToken, error) {
			var t RefreshToken
			var exp string
			var app, next sql.NullString
			if err := r.Scan(&t.ID, &t.DID, &exp, &app, &next); err != nil {
				return t, err
			}
			t.AppPasswordName, t.NextID = app.String, next.String
			return t, parseInto(&t.ExpiresAt, exp)
		})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, t := range all {
		if t.ExpiresAt.After(now) {
			out = append(out, t)
		}
	}
	return out, nil
}

// InviteCode is an invite code of account.sqlite with its uses.
type InviteCode struct {
	Code          string
	AvailableUses int
	Disabled      bool
	ForAccount    string
	CreatedBy     string
	CreatedAt     time.Time
	Uses          []InviteUse
}

// InviteUse is one use of a code.
type InviteUse struct {
	UsedBy string
	UsedAt time.Time
}

// InviteCodes returns every invite code with its uses.
func (d *Dir) InviteCodes(ctx context.Context) ([]*InviteCode, error) {
	codes, err := query(ctx, d.account, "account.sqlite", "SELECT code, availableUses, coalesce(disabled, 0), forAccount, createdBy, createdAt FROM invite_code ORDER BY code",
		func(r *sql.Rows) (*InviteCode, error) {
			var c InviteCode
			var created string
			if err := r.Scan(&c.Code, &c.AvailableUses, &c.Disabled, &c.ForAccount, &c.CreatedBy, &created); err != nil {
				return nil, err
			}
			return &c, parseInto(&c.CreatedAt, created)
		})
	if err != nil {
		return nil, err
	}
	byCode := map[string]*InviteCode{}
	for _, c := range codes {
		byCode[c.Code] = c
	}
	type use struct {
		code string
		InviteUse
	}
	uses, err := query(ctx, d.account, "account.sqlite", "SELECT code, usedBy, usedAt FROM invite_code_use ORDER BY code, usedAt",
		func(r *sql.Rows) (use, error) {
			var u use
			var at string
			if err := r.Scan(&u.code, &u.UsedBy, &at); err != nil {
				return u, err
			}
			return u, parseInto(&u.UsedAt, at)
		})
	if err != nil {
		return nil, err
	}
	for _, u := range uses {
		c := byCode[u.code]
		if c == nil {
			return nil, fmt.Errorf("account.sqlite: invite_code_use of an unknown code %q", u.code)
		}
		c.Uses = append(c.Uses, u.InviteUse)
	}
	return codes, nil
}

// RepoRoots returns account.sqlite's copy of each repository's head: DID -> {commit CID, rev}.
func (d *Dir) RepoRoots(ctx context.Context) (map[string]Root, error) {
	roots, err := query(ctx, d.account, "account.sqlite", "SELECT did, cid, rev FROM repo_root",
		func(r *sql.Rows) (Root, error) {
			var x Root
			return x, r.Scan(&x.DID, &x.CID, &x.Rev)
		})
	if err != nil {
		return nil, err
	}
	out := make(map[string]Root, len(roots))
	for _, r := range roots {
		out[r.DID] = r
	}
	return out, nil
}

// Root is a repository head as the reference records it.
type Root struct {
	DID, CID, Rev string
}

// Count returns the number of rows of a table of account.sqlite (what the takeover reports it does not carry:
// email tokens, OAuth sessions).
func (d *Dir) Count(ctx context.Context, table string) (int64, error) {
	switch table {
	case "email_token", "token", "device", "account_device", "authorized_client", "authorization_request":
	default:
		return 0, fmt.Errorf("refpds: Count: unexpected table %q", table)
	}
	var n int64
	if err := d.account.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("account.sqlite: %w", err)
	}
	return n, nil
}

func parseInto(dst *time.Time, s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", s, err)
	}
	*dst = t
	return nil
}

func query[T any](ctx context.Context, db *sql.DB, file, q string, scan func(*sql.Rows) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}
