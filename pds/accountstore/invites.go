package accountstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// InviteCode is an invite code with its uses.
type InviteCode struct {
	Code       string
	Available  int
	Disabled   bool
	ForAccount string
	CreatedBy  string
	CreatedAt  time.Time
	Uses       []InviteUse
}

// InviteUse is one account created with a code.
type InviteUse struct {
	UsedBy string
	UsedAt time.Time
}

// ErrCannotDisableAdminCodes: disableInviteCodes refuses the "admin" pseudo-account (as the reference).
var ErrCannotDisableAdminCodes = errors.New("cannot disable admin invite codes")

// CreateInviteCodes stores several codes, each usable `available` times, in one transaction. disabled creates
// them already disabled (an account whose invites are disabled still earns codes, for bookkeeping).
func (s *Store) CreateInviteCodes(ctx context.Context, codes []string, available int, forAccount, createdBy string, disabled bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := s.clock().UTC().Format(timeFormat)
	for _, code := range codes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO invite_code (code, available, disabled, for_account, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			code, available, disabled, forAccount, createdBy, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const inviteColumns = "code, available, disabled, for_account, created_by, created_at"

func scanInvite(row rowScanner) (*InviteCode, error) {
	var c InviteCode
	var created string
	if err := row.Scan(&c.Code, &c.Available, &c.Disabled, &c.ForAccount, &c.CreatedBy, &created); err != nil {
		return nil, err
	}
	c.CreatedAt, _ = time.Parse(timeFormat, created)
	return &c, nil
}

func (s *Store) queryInvites(ctx context.Context, q string, args ...any) ([]*InviteCode, error) {
	out, err := queryRows(ctx, s.db, scanInvite, q, args...)
	if err != nil {
		return nil, err
	}
	return out, s.attachUses(ctx, out)
}

// attachUses loads the uses of codes (one query).
func (s *Store) attachUses(ctx context.Context, codes []*InviteCode) error {
	if len(codes) == 0 {
		return nil
	}
	byCode := make(map[string]*InviteCode, len(codes))
	args := make([]any, len(codes))
	for i, c := range codes {
		byCode[c.Code] = c
		args[i] = c.Code
		c.Uses = []InviteUse{}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT code, used_by, used_at FROM invite_code_use WHERE code IN ("+
		placeholders(len(codes))+") ORDER BY used_at", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var code, by, at string
		if err := rows.Scan(&code, &by, &at); err != nil {
			return err
		}
		t, _ := time.Parse(timeFormat, at)
		byCode[code].Uses = append(byCode[code].Uses, InviteUse{UsedBy: by, UsedAt: t})
	}
	return rows.Err()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// InviteCodesForAccount returns the codes made for an account, oldest first.
func (s *Store) InviteCodesForAccount(ctx context.Context, did syntax.DID) ([]*InviteCode, error) {
	return s.queryInvites(ctx, "SELECT "+inviteColumns+" FROM invite_code WHERE for_account = ? ORDER BY created_at, code", did)
}

// InviteCodeUsedBy returns the code an account signed up with, or ErrNotFound.
func (s *Store) InviteCodeUsedBy(ctx context.Context, did syntax.DID) (*InviteCode, error) {
	codes, err := s.queryInvites(ctx, "SELECT "+inviteColumns+" FROM invite_code WHERE code = (SELECT code FROM invite_code_use WHERE used_by = ? LIMIT 1)", did)
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, ErrNotFound
	}
	return codes[0], nil
}

// InviteCodeByCode returns one code with its uses, or ErrNotFound.
func (s *Store) InviteCodeByCode(ctx context.Context, code string) (*InviteCode, error) {
	codes, err := s.queryInvites(ctx, "SELECT "+inviteColumns+" FROM invite_code WHERE code = ?", code)
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, ErrNotFound
	}
	return codes[0], nil
}

// InviteSort orders ListInviteCodes.
type InviteSort string

const (
	InviteSortRecent InviteSort = "recent" // newest first
	InviteSortUsage  InviteSort = "usage"  // most used first
)

// ListInviteCodes pages through every code. The cursor is opaque (from the previous page); "" starts.
func (s *Store) ListInviteCodes(ctx context.Context, sort InviteSort, cursor string, limit int) ([]*InviteCode, string, error) {
	const uses = "(SELECT count(*) FROM invite_code_use u WHERE u.code = c.code)"
	var q string
	var args []any
	switch sort {
	case InviteSortUsage:
		q = "SELECT " + inviteColumns + ", " + uses + " AS n FROM invite_code c"
		if cursor != "" {
			var n int
			var code string
			if _, err := fmt.Sscanf(cursor, "%d::%s", &n, &code); err != nil {
				return nil, "", fmt.Errorf("%w: bad cursor", ErrInvalidCursor)
			}
			q += " WHERE (" + uses + " < ? OR (" + uses + " = ? AND code > ?))"
			args = append(args, n, n, code)
		}
		q += " ORDER BY n DESC, code LIMIT ?"
	default:
		q = "SELECT " + inviteColumns + ", " + uses + " AS n FROM invite_code c"
		if cursor != "" {
			at, code, ok := strings.Cut(cursor, "::")
			if !ok {
				return nil, "", fmt.Errorf("%w: bad cursor", ErrInvalidCursor)
			}
			q += " WHERE (created_at < ? OR (created_at = ? AND code > ?))"
			args = append(args, at, at, code)
		}
		q += " ORDER BY created_at DESC, code LIMIT ?"
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	var out []*InviteCode
	var lastN int
	for rows.Next() {
		var c InviteCode
		var created string
		if err := rows.Scan(&c.Code, &c.Available, &c.Disabled, &c.ForAccount, &c.CreatedBy, &created, &lastN); err != nil {
			rows.Close()
			return nil, "", err
		}
		c.CreatedAt, _ = time.Parse(timeFormat, created)
		out = append(out, &c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if err := s.attachUses(ctx, out); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) == limit {
		last := out[len(out)-1]
		if sort == InviteSortUsage {
			next = fmt.Sprintf("%d::%s", lastN, last.Code)
		} else {
			next = last.CreatedAt.UTC().Format(timeFormat) + "::" + last.Code
		}
	}
	return out, next, nil
}

// ErrInvalidCursor: a paging cursor that this store did not make.
var ErrInvalidCursor = errors.New("invalid cursor")

// DisableInviteCodes disables the listed codes and every code made for the listed accounts.
func (s *Store) DisableInviteCodes(ctx context.Context, codes, accounts []string) error {
	for _, a := range accounts {
		if a == "admin" {
			return ErrCannotDisableAdminCodes
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range codes {
		if _, err := tx.ExecContext(ctx, "UPDATE invite_code SET disabled = 1 WHERE code = ?", c); err != nil {
			return err
		}
	}
	for _, a := range accounts {
		if _, err := tx.ExecContext(ctx, "UPDATE invite_code SET disabled = 1 WHERE for_account = ?", a); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// SetInvitesDisabled turns an account's invite creation off or on (admin disable/enableAccountInvites).
func (s *Store) SetInvitesDisabled(ctx context.Context, did syntax.DID, disabled bool) error {
	defer s.changed(did)
	res, err := s.db.ExecContext(ctx, "UPDATE account SET invites_disabled = ? WHERE did = ?", disabled, did)
	if err != nil {
		return err
	}
	return oneRow(res)
}

// InviteCodeAvailable reports why a code cannot be used now (ErrInvalidInvite), or nil.
func (s *Store) InviteCodeAvailable(ctx context.Context, code string) error {
	return checkInvite(ctx, s.db, code)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkInvite: the code exists, is not disabled, has uses left, and its owner is not taken down.
func checkInvite(ctx context.Context, q queryer, code string) error {
	var available, used int
	var disabled bool
	var ownerTakendown sql.NullString
	err := q.QueryRowContext(ctx, `SELECT c.available, c.disabled, (SELECT count(*) FROM invite_code_use u WHERE u.code = c.code),
		(SELECT takedown_ref FROM account a WHERE a.did = c.for_account)
		FROM invite_code c WHERE c.code = ?`, code).Scan(&available, &disabled, &used, &ownerTakendown)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidInvite
	}
	if err != nil {
		return err
	}
	if disabled || used >= available || ownerTakendown.String != "" {
		return fmt.Errorf("%w: code has no uses left", ErrInvalidInvite)
	}
	return nil
}
