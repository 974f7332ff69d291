package accounts

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// What the account pages offer a person who leaves: their data, deactivation, deletion.

// WriteRepoCAR writes the account's whole repository as a CAR file (as com.atproto.sync.getRepo).
func (s *Service) WriteRepoCAR(ctx context.Context, did syntax.DID, w io.Writer) error {
	r, err := s.d.Repos.Repo(ctx, did)
	if err != nil {
		return err
	}
	defer r.Release()
	return r.WriteCAR(ctx, w, "")
}

// BlobCIDs lists the CIDs of every blob the account's records reference (as com.atproto.sync.listBlobs).
func (s *Service) BlobCIDs(ctx context.Context, did syntax.DID) ([]string, error) {
	r, err := s.d.Repos.Repo(ctx, did)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var out []string
	cursor := ""
	for {
		page, next, err := r.ListBlobs(ctx, "", cursor, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// SetActive deactivates (no deletion date) or reactivates the account.
func (s *Service) SetActive(ctx context.Context, did syntax.DID, active bool) error {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	if active {
		return s.Activate(ctx, acct)
	}
	return s.Deactivate(ctx, acct, nil)
}

// RequestDeletion mails the token that DeleteWithToken needs.
func (s *Service) RequestDeletion(ctx context.Context, did syntax.DID) error {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return err
	}
	return s.SendEmailToken(ctx, acct, accountstore.PurposeDeleteAccount)
}

// DeleteWithToken deletes the account given its password and the mailed token (as deleteAccount).
func (s *Service) DeleteWithToken(ctx context.Context, did syntax.DID, password, token string) error {
	acct, err := s.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	if len(password) > 512 || !VerifyPassword(password, acct.PasswordHash) {
		return ErrWrongPassword
	}
	if err := s.CheckEmailToken(ctx, acct.DID, accountstore.PurposeDeleteAccount, token); err != nil {
		return xrpcerr.EmailToken(err)
	}
	if err := s.Delete(ctx, acct.DID); err != nil {
		if errors.Is(err, accountstore.ErrNotFound) {
			return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
		}
		return err
	}
	return nil
}
