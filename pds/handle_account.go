package pds

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Account status and deletion endpoints (com.atproto.server.*Account), and createAccount for a DID the user
// brings (did:web).

func (s *Server) handleActivateAccount(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.Activate(c.Request().Context(), acct); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleDeactivateAccount(c echo.Context) error {
	var in struct {
		DeleteAfter string `json:"deleteAfter"`
	}
	if c.Request().ContentLength != 0 { // every field is optional: no body is an empty input
		if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
			return err
		}
	}
	var deleteAfter *time.Time
	if in.DeleteAfter != "" {
		dt, err := syntax.ParseDatetimeLenient(in.DeleteAfter)
		if err != nil {
			return xrpc.InvalidRequest("deleteAfter must be a datetime")
		}
		t := dt.Time()
		deleteAfter = &t
	}
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.accounts.Deactivate(c.Request().Context(), acct, deleteAfter); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleRequestAccountDelete(c echo.Context) error {
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if err := s.sendEmailToken(c.Request().Context(), acct, accountstore.PurposeDeleteAccount, subjectDeleteAccount); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleDeleteAccount(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		DID      string `json:"did"`
		Password string `json:"password"`
		Token    string `json:"token"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.AccountByDID(ctx, in.DID)
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.InvalidRequest("account not found")
	}
	if err != nil {
		return err
	}
	if len(in.Password) > 512 || !accounts.VerifyPassword(in.Password, acct.PasswordHash) {
		return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Invalid did or password")
	}
	// The token goes with the account row; checking it is enough.
	if err := s.accounts.CheckEmailToken(ctx, acct.DID, accountstore.PurposeDeleteAccount, in.Token); err != nil {
		return emailTokenError(err)
	}
	if err := s.accounts.Delete(ctx, acct.DID); err != nil {
		if errors.Is(err, accountstore.ErrNotFound) {
			return xrpc.InvalidRequest("account not found") // deleted concurrently
		}
		return err
	}
	return c.NoContent(http.StatusOK)
}

// createAccountWithDID creates an account for a DID the caller already controls: a did:web (atproto#2100), or
// a did:plc migrating from another PDS (docs/migration.md). The caller proves control with a service-auth JWT
// signed by the key in the DID document as it is now (for a migration: issued by the old PDS with
// getServiceAuth, aud this server's DID, lxm createAccount). The account starts deactivated, with a new signing
// key and an empty repo and nothing on the firehose: the user then imports the repository (importRepo) and
// blobs, puts getRecommendedDidCredentials into the document (a PLC operation signed by the old PDS, or the
// did:web document) and calls activateAccount, which checks it. Nothing is written to PLC here. (Invite, email
// and password are checked by the caller.)
func (s *Server) createAccountWithDID(c echo.Context, in *createAccountInput) error {
	ctx := c.Request().Context()
	did, err := syntax.ParseDID(in.DID)
	if err != nil {
		return xrpc.InvalidRequest("Invalid DID: %s", in.DID)
	}
	if did.Method() != "web" && did.Method() != "plc" {
		return xrpc.InvalidRequest("Unsupported DID method: %s", did.Method())
	}
	raw, ok := xrpc.BearerToken(c.Request())
	if !ok {
		return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Missing auth to create account with did: %s", did)
	}
	iss, err := s.auth.ServiceAuth(ctx, raw, "com.atproto.server.createAccount")
	if err != nil {
		s.log.Info("createAccount: service auth refused", "did", did, "err", err)
		return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Service auth token could not be verified for did: %s", did)
	}
	if iss != did {
		return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Missing auth to create account with did: %s", did)
	}
	handle, err := s.accounts.ValidateHandle(ctx, in.Handle, did.String())
	if err != nil {
		return err
	}
	if _, err := s.accounts.AccountByDID(ctx, did.String()); err == nil {
		return xrpc.InvalidRequest("Account already exists: %s", did)
	}
	if _, err := s.accounts.AccountByHandle(ctx, handle); err == nil {
		return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
	}
	if _, err := s.accounts.AccountByEmail(ctx, in.Email); err == nil {
		return xrpc.InvalidRequest("Email already taken: %s", in.Email)
	}
	signingKey, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		return err
	}
	passwordHash, err := accounts.HashPassword(in.Password)
	if err != nil {
		return err
	}
	now := time.Now()
	acct := &accountstore.Account{
		DID:           did.String(),
		Handle:        handle,
		Email:         in.Email,
		PasswordHash:  passwordHash,
		SigningKey:    signingKey.Bytes(),
		CreatedAt:     now,
		DeactivatedAt: &now,
	}
	if err := s.accounts.CreateAccount(ctx, acct, in.InviteCode); err != nil {
		switch {
		case errors.Is(err, accountstore.ErrHandleTaken):
			return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
		case errors.Is(err, accountstore.ErrEmailTaken):
			return xrpc.InvalidRequest("Email already taken: %s", in.Email)
		case errors.Is(err, accountstore.ErrDIDTaken):
			return xrpc.InvalidRequest("Account already exists: %s", did)
		case errors.Is(err, accountstore.ErrInvalidInvite):
			return xrpc.NewError(http.StatusBadRequest, "InvalidInviteCode", "Provided invite code not available")
		}
		return err
	}
	undo := func() {
		bg := context.WithoutCancel(ctx)
		s.repos.Delete(bg, did)
		s.accounts.DeleteAccount(bg, did.String())
	}
	commit, err := s.repos.Create(ctx, did, signingKey)
	if err != nil {
		undo()
		return err
	}
	// A deactivated account's genesis commit is never sequenced (activation announces the head with #sync
	// instead): drop it from the outbox so crash recovery cannot send it later.
	if err := s.repos.With(ctx, did, func(r *repo.Repo) error { return r.TrimOutbox(ctx, commit.Rev) }); err != nil {
		undo()
		return err
	}
	tokens, err := s.auth.CreateSession(ctx, acct, "")
	if err != nil {
		undo()
		return err
	}
	out := sessionOutput{AccessJwt: tokens.Access, RefreshJwt: tokens.Refresh, Handle: handle, DID: did.String()}
	if ident, err := s.accounts.ResolveDIDDoc(ctx, did, false); err == nil {
		if b, err := json.Marshal(ident.DIDDocument()); err == nil {
			json.Unmarshal(b, &out.DIDDoc)
		}
	}
	return c.JSON(http.StatusOK, out)
}
