package accounts

import (
	"context"
	"net/http"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Lookup finds an account by handle, DID or email (accountstore.ErrNotFound when there is none).
func (s *Service) Lookup(ctx context.Context, identifier string) (*accountstore.Account, error) {
	identifier = strings.TrimSpace(identifier)
	switch {
	case strings.HasPrefix(identifier, "did:"):
		return s.AccountByDID(ctx, syntax.DID(identifier)) // an invalid DID is simply not found
	case strings.Contains(identifier, "@"):
		return s.AccountByEmail(ctx, identifier)
	default:
		return s.AccountByHandle(ctx, strings.ToLower(identifier))
	}
}

// Find is Lookup for the operator: no account is an AccountNotFound error naming the identifier.
func (s *Service) Find(ctx context.Context, identifier string) (*accountstore.Account, error) {
	acct, err := s.Lookup(ctx, identifier)
	if err != nil {
		return nil, xrpcerr.AccountNamed(err, identifier)
	}
	return acct, nil
}

// ByDID loads an account (the caller's, typically): no account is an AccountNotFound error.
func (s *Service) ByDID(ctx context.Context, did syntax.DID) (*accountstore.Account, error) {
	acct, err := s.AccountByDID(ctx, did)
	if err != nil {
		return nil, xrpcerr.Account(err)
	}
	return acct, nil
}

// PLCAccount is ByDID for the PLC operation methods, which only did:plc accounts have.
func (s *Service) PLCAccount(ctx context.Context, did syntax.DID) (*accountstore.Account, error) {
	acct, err := s.ByDID(ctx, did)
	if err != nil {
		return nil, err
	}
	if !isPLC(acct.DID) {
		return nil, xrpc.InvalidRequest("PLC operations are only for did:plc accounts")
	}
	return acct, nil
}

// ForSync loads the account a sync read names (did). Deactivated and taken-down repos are hidden from everyone
// but their owner (deactivated) as in the reference; viewer is the authenticated caller ("" for none).
func (s *Service) ForSync(ctx context.Context, did syntax.DID, viewer syntax.DID) (*accountstore.Account, error) {
	acct, err := s.AccountByDID(ctx, did)
	if err != nil {
		return nil, xrpcerr.RepoFor(err, did)
	}
	if acct.TakedownRef != "" {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoTakendown, "Repo has been taken down: %s", did)
	}
	if acct.DeactivatedAt != nil && viewer != acct.DID {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoDeactivated, "Repo has been deactivated: %s", did)
	}
	return acct, nil
}

// Writable loads the account a write request names (DID or handle) and checks that the caller (writer) owns it
// and that it may be written to.
func (s *Service) Writable(ctx context.Context, repoParam string, writer syntax.DID) (*accountstore.Account, error) {
	acct, err := s.Lookup(ctx, repoParam)
	if err != nil {
		return nil, xrpcerr.RepoParam(err, repoParam)
	}
	if acct.DID != writer {
		return nil, xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Authentication Required")
	}
	if acct.TakedownRef != "" {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	if acct.DeactivatedAt != nil {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountDeactivated, "Account is deactivated")
	}
	return acct, nil
}

// Readable loads the account a record read names (DID or handle), hidden as for ForSync.
func (s *Service) Readable(ctx context.Context, repoParam string, viewer syntax.DID) (*accountstore.Account, error) {
	acct, err := s.Lookup(ctx, repoParam)
	if err != nil {
		return nil, xrpcerr.RepoParam(err, repoParam)
	}
	if acct.TakedownRef != "" {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoTakendown, "Repo has been taken down: %s", acct.DID)
	}
	if acct.DeactivatedAt != nil && viewer != acct.DID {
		return nil, xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoDeactivated, "Repo has been deactivated: %s", acct.DID)
	}
	return acct, nil
}

// SyncRepo is ForSync plus the account's repository, for a sync read; the caller releases it.
func (s *Service) SyncRepo(ctx context.Context, did, viewer syntax.DID) (*accountstore.Account, *repo.Repo, error) {
	acct, err := s.ForSync(ctx, did, viewer)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.OpenRepo(ctx, acct.DID)
	if err != nil {
		return nil, nil, err
	}
	return acct, r, nil
}

// OpenRepo opens an account's repository for a read (RepoNotFound naming did when there is none); the caller
// releases it.
func (s *Service) OpenRepo(ctx context.Context, did syntax.DID) (*repo.Repo, error) {
	r, err := s.d.Repos.Repo(ctx, did)
	if err != nil {
		return nil, xrpcerr.RepoFor(err, did)
	}
	return r, nil
}
