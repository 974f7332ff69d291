// Package xrpcerr is the one place where the stores' sentinel errors become XRPC errors (status, xrpc.Name*
// constant, the reference's message). One function per sentinel set: Repo and Blob for a repository write,
// Import and ArchiveImport for repository imports, Upload for the blob store, Account, AccountClaim and
// Handle for the account store, EmailToken and Invite for its tokens and invite codes, PLC for the PLC
// directory; then the lookups whose wording is one method's (RepoFor, Record, AppPassword, ...). Handlers and
// the pds packages that answer requests call them; an error a function does not know is returned unchanged
// (a 500, logged by the error handler).
//
// It knows every store's sentinels and nothing else: it may not import the server's services (writer,
// accounts, blobs...), so each of them can use it.
package xrpcerr

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Repo maps a repository write's errors (repo.Err*: swaps, invalid writes, limits, a missing repo), then
// the blob reference errors (Blob).
func Repo(err error) error {
	switch {
	case errors.Is(err, repo.ErrInvalidSwap):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidSwap, "%s", xrpc.TrimSentinel(err, repo.ErrInvalidSwap))
	case errors.Is(err, repo.ErrInvalidWrite):
		return xrpc.InvalidRequest("%s", xrpc.TrimSentinel(err, repo.ErrInvalidWrite))
	case errors.Is(err, repo.ErrRecordExists):
		return xrpc.InvalidRequest("Record already exists")
	case errors.Is(err, repo.ErrRecordNotFound):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRecordNotFound, "Could not find record")
	case errors.Is(err, repo.ErrTooManyOps):
		return xrpc.InvalidRequest("Too many writes. Max: 200")
	case errors.Is(err, repo.ErrTooLarge):
		return xrpc.NewError(http.StatusRequestEntityTooLarge, xrpc.NamePayloadTooLarge, "Commit is too large (more than 2,000,000 bytes of blocks)")
	case errors.Is(err, repo.ErrRepoNotFound):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoNotFound, "Could not find repo")
	}
	return Blob(err)
}

// Blob maps the errors of a record's blob references: a blob not uploaded, or declared with another MIME
// type or size than the stored one.
func Blob(err error) error {
	var mm *repo.BlobMismatchError
	switch {
	case errors.Is(err, repo.ErrBlobNotFound):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameBlobNotFound, "Could not find blob: %s", xrpc.TrimSentinel(err, repo.ErrBlobNotFound))
	case errors.As(err, &mm) && mm.Field == "mimeType":
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidMimeType,
			"Referenced Mimetype does not match stored blob. Expected: %s, Got: %s", mm.Stored, mm.Declared)
	case errors.As(err, &mm):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidSize,
			"Referenced Size does not match stored blob. Expected: %s, Got: %s", mm.Stored, mm.Declared)
	}
	return err
}

// Import maps importRepo's errors (repo.ErrImport*, then Repo); limit is the import size limit in bytes.
func Import(err error, limit int64) error {
	switch {
	case errors.Is(err, repo.ErrImportTooLarge):
		return xrpc.PayloadTooLarge("Repository is larger than the import limit (%d bytes)", limit)
	case errors.Is(err, repo.ErrImportInvalid):
		return xrpc.InvalidRequest("Invalid repository: %s", xrpc.TrimSentinel(err, repo.ErrImportInvalid))
	case errors.Is(err, repo.ErrImportInProgress), errors.Is(err, repo.ErrImportConflict):
		return xrpc.InvalidRequest("%s", err.Error())
	}
	return Repo(err)
}

// ArchiveImport maps the errors of an account archive's repository import.
func ArchiveImport(err error) error {
	if errors.Is(err, repo.ErrImportInvalid) {
		return xrpc.InvalidRequest("Invalid repository in the archive: %s", xrpc.TrimSentinel(err, repo.ErrImportInvalid))
	}
	return Repo(err)
}

// AccountNotFound is the error for an account that does not exist.
func AccountNotFound() error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
}

// Account maps an account lookup: accountstore.ErrNotFound is AccountNotFound.
func Account(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return AccountNotFound()
	}
	return err
}

// AccountClaim maps the errors of a new account row, which claims a handle, an email, the DID and an invite
// code atomically (accountstore.CreateAccount). The archive import names the server ("already taken here").
func AccountClaim(err error, acct *accountstore.Account) error {
	if errors.Is(err, accountstore.ErrDIDTaken) {
		return xrpc.InvalidRequest("Account already exists: %s", acct.DID)
	}
	return accountClaim(err, acct, "")
}

// ArchiveAccountClaim is AccountClaim for an account adopted from an archive.
func ArchiveAccountClaim(err error, acct *accountstore.Account) error {
	return accountClaim(err, acct, " here")
}

func accountClaim(err error, acct *accountstore.Account, here string) error {
	switch {
	case errors.Is(err, accountstore.ErrHandleTaken):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameHandleNotAvailable, "Handle already taken%s: %s", here, acct.Handle)
	case errors.Is(err, accountstore.ErrEmailTaken):
		return xrpc.InvalidRequest("Email already taken%s: %s", here, acct.Email)
	case errors.Is(err, accountstore.ErrInvalidInvite) && here == "":
		return InviteCodeUnavailable()
	}
	return err
}

// HandleTaken is the error for a handle another account holds.
func HandleTaken(handle string) error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameHandleNotAvailable, "Handle already taken: %s", handle)
}

// InviteCodeUnavailable is the error for an invite code that is unknown, disabled or used up.
func InviteCodeUnavailable() error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidInviteCode, "Provided invite code not available")
}

// EmailToken maps the store's email token errors.
func EmailToken(err error) error {
	switch {
	case errors.Is(err, accountstore.ErrInvalidToken):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidToken, "Token is invalid")
	case errors.Is(err, accountstore.ErrExpiredToken):
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameExpiredToken, "Token is expired")
	}
	return err
}

// Invite maps the store's invite code errors.
func Invite(err error) error {
	switch {
	case errors.Is(err, accountstore.ErrCannotDisableAdminCodes):
		return xrpc.InvalidRequest("cannot disable admin invite codes")
	case errors.Is(err, accountstore.ErrInvalidCursor):
		return xrpc.InvalidRequest("Malformed cursor")
	case errors.Is(err, accountstore.ErrNotFound):
		return AccountNotFound()
	}
	return err
}

// PLC maps a PLC directory failure: a refusal (4xx) is the client's problem and carries the directory's
// message; anything else is an upstream failure, logged to log.
func PLC(err error, log *slog.Logger) error {
	var pe *plc.Error
	if errors.As(err, &pe) && pe.StatusCode >= 400 && pe.StatusCode < 500 {
		return xrpc.InvalidRequest("The PLC directory refused the operation: %s", pe.Message)
	}
	log.Error("PLC directory request failed", "err", err)
	return xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "The PLC directory could not be reached")
}

// InvalidHandle is the error for a handle that is malformed or not allowed here.
func InvalidHandle(msg string) error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidHandle, "%s", msg)
}

// Handle maps a handle change's store error (accountstore.ErrHandleTaken).
func Handle(err error, handle string) error {
	if errors.Is(err, accountstore.ErrHandleTaken) {
		return HandleTaken(handle)
	}
	return err
}

// The mappings of one method's lookups, with the reference's wording for it.

// AppPassword maps createAppPassword's store errors.
func AppPassword(err error) error {
	if errors.Is(err, accountstore.ErrAppPasswordExists) {
		return xrpc.InvalidRequest("An app password with that name already exists")
	}
	return Account(err)
}

// RepoFor maps a sync read's missing repository or account (repo.ErrRepoNotFound, accountstore.ErrNotFound)
// to RepoNotFound naming did.
func RepoFor(err error, did syntax.DID) error {
	if errors.Is(err, repo.ErrRepoNotFound) || errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRepoNotFound, "Could not find repo for DID: %s", did)
	}
	return err
}

// Record maps getRecord's missing record (repo.ErrRecordNotFound) to RecordNotFound naming uri.
func Record(err error, uri string) error {
	if errors.Is(err, repo.ErrRecordNotFound) {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRecordNotFound, "Could not locate record: %s", uri)
	}
	return err
}

// EmailUpdate maps updateEmail's store errors (an address another account has).
func EmailUpdate(err error) error {
	if errors.Is(err, accountstore.ErrEmailTaken) {
		return xrpc.InvalidRequest("This email address is already in use, please use a different email.")
	}
	return err
}

// PasswordResetAccount maps requestPasswordReset's lookup by email.
func PasswordResetAccount(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	return err
}

// DeleteAccount maps deleteAccount's lookups (the reference's lower-case InvalidRequest).
func DeleteAccount(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("account not found")
	}
	return err
}

// AdminAccount maps the admin account reads' lookup (NotFound, as the reference).
func AdminAccount(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameNotFound, "Account not found")
	}
	return err
}

// AccountNamed maps an operator's account lookup: AccountNotFound naming what was asked for.
func AccountNamed(err error, identifier string) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found: %s", identifier)
	}
	return err
}

// RepoParam maps a record method's lookup of its repo parameter (a DID or handle).
func RepoParam(err error, repoParam string) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("Could not find repo: %s", repoParam)
	}
	return err
}

// Recipient maps sendEmail's lookup of its recipient.
func Recipient(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("Recipient not found")
	}
	return err
}

// Upload maps a blob upload's store errors: over the size limit (in bytes), or a body that broke off.
func Upload(err error, limit int64) error {
	var be *blobstore.BodyError
	switch {
	case errors.Is(err, blobstore.ErrTooLarge):
		return xrpc.PayloadTooLarge("Blob is larger than the upload limit (%d bytes)", limit)
	case errors.As(err, &be):
		return xrpc.InvalidRequest("Could not read the request body")
	}
	return err
}
