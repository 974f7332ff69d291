package accounts

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// NewAccount is a createAccount request whose email and password passed the handler's checks.
type NewAccount struct {
	Handle     string
	Email      string
	Password   string
	InviteCode string
	// RecoveryKey is the user's own rotation key (a did:key) for a new did:plc, or "".
	RecoveryKey string
}

// Create creates an account with a new did:plc: the genesis operation (rotation keys: the user's recovery key,
// the operator's, then the server's) goes to the PLC directory, then the repository and the account row are
// made and the creation events (#identity, #account, #commit, #sync) sequenced.
func (s *Service) Create(ctx context.Context, in NewAccount) (*accountstore.Account, error) {
	handle, err := s.normalizeServiceHandle(in.Handle)
	if err != nil {
		return nil, err
	}
	if _, err := s.AccountByHandle(ctx, handle); err == nil {
		return nil, xrpcerr.HandleTaken(handle)
	}
	if _, err := s.AccountByEmail(ctx, in.Email); err == nil {
		return nil, xrpc.InvalidRequest("Email already taken: %s", in.Email)
	}
	rotationKeys := []string{}
	if in.RecoveryKey != "" {
		if _, err := atcrypto.ParsePublicDIDKey(in.RecoveryKey); err != nil {
			return nil, xrpc.InvalidRequest("Invalid recovery key: must be a did:key")
		}
		rotationKeys = append(rotationKeys, in.RecoveryKey)
	}
	if s.cfg.RecoveryDIDKey != "" {
		rotationKeys = append(rotationKeys, s.cfg.RecoveryDIDKey)
	}
	rotPub, err := s.cfg.RotationKey.PublicKey()
	if err != nil {
		return nil, err
	}
	rotationKeys = append(rotationKeys, rotPub.DIDKey())

	signingKey, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		return nil, err
	}
	signingPub, err := signingKey.PublicKey()
	if err != nil {
		return nil, err
	}
	op := plc.NewGenesis(signingPub, rotationKeys, handle, s.cfg.PublicURL)
	if err := op.Sign(s.cfg.RotationKey); err != nil {
		return nil, err
	}
	didStr, err := op.DID()
	if err != nil {
		return nil, err
	}
	did := syntax.DID(didStr) // derived from the signed genesis operation
	passwordHash, err := HashPassword(in.Password)
	if err != nil {
		return nil, err
	}
	acct := &accountstore.Account{
		DID:          did,
		Handle:       handle,
		Email:        in.Email,
		PasswordHash: passwordHash,
		SigningKey:   signingKey.Bytes(),
		CreatedAt:    time.Now(),
	}
	// Order matters for crash safety (see the write path's recovery): the DID exists at the PLC directory
	// before anything local names it; the repo exists (with its genesis commit in the outbox, the account
	// marked dirty) before the account row; the account row claims the handle and email atomically, and a
	// failure there undoes the repo. A crash at any point leaves either nothing local (an unused DID at the
	// directory, as the reference can) or an account whose creation events recovery emits.
	if in.InviteCode != "" {
		// Checked again atomically with the account row; checked here so a bad code costs no DID.
		if err := s.InviteCodeAvailable(ctx, in.InviteCode); err != nil {
			return nil, xrpcerr.InviteCodeUnavailable()
		}
	}
	if err := s.d.PLC.Submit(ctx, did.String(), op); err != nil {
		s.log.Error("PLC directory refused the genesis operation", "did", did, "err", err)
		return nil, xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "The PLC directory did not accept the new DID")
	}
	undo := func() {
		bg := context.WithoutCancel(ctx)
		s.d.Repos.Delete(bg, did)
		s.d.Seq.Forget(bg, did)
	}
	if err := s.d.Seq.MarkDirty(ctx, did); err != nil {
		return nil, err
	}
	commit, err := s.d.Repos.Create(ctx, did, signingKey)
	if err != nil {
		undo()
		return nil, err
	}
	if err := s.CreateAccount(ctx, acct, in.InviteCode); err != nil {
		undo()
		return nil, xrpcerr.AccountClaim(err, acct)
	}
	// Same order as the reference: identity, account, commit, sync.
	s.d.Seq.EnqueueIdentity(did, handle)
	s.d.Seq.EnqueueAccount(did, true, "")
	s.d.Seq.EnqueueCommit(commit.Event)
	s.d.Seq.EnqueueSync(did, commit.Rev, commit.SyncCAR())
	return acct, nil
}

// CreateWithDID creates an account for a DID the caller already controls (the handler checked its service
// auth): a did:web (atproto#2100), or a did:plc migrating from another PDS (docs/migration.md). The account
// starts deactivated, with an empty repo and nothing on the firehose: the user then imports the repository
// (importRepo) and blobs, puts getRecommendedDidCredentials into the document (a PLC operation signed by the old
// PDS, or the did:web document) and calls activateAccount, which checks it. Its signing key is the one reserved
// for the DID (reserveSigningKey), if any, else a new one. Nothing is written to PLC here. undo removes the
// account again if what the caller does next fails.
func (s *Service) CreateWithDID(ctx context.Context, did syntax.DID, in NewAccount) (acct *accountstore.Account, undo func(), err error) {
	handle, err := s.validateHandle(ctx, in.Handle, did)
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkAvailable(ctx, did, handle, in.Email); err != nil {
		return nil, nil, err
	}
	var signingKey *atcrypto.PrivateKeyK256
	reserved, err := s.Store.ReservedSigningKey(ctx, did, "")
	switch {
	case err == nil:
		if signingKey, err = atcrypto.ParsePrivateBytesK256(reserved.PrivateKey); err != nil {
			return nil, nil, err
		}
	case errors.Is(err, accountstore.ErrNotFound):
		if signingKey, err = atcrypto.GeneratePrivateKeyK256(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, err
	}
	acct, undo, err = s.createDeactivated(ctx, did, handle, in, signingKey)
	if err != nil {
		return nil, nil, err
	}
	if reserved != nil {
		s.clearReservation(ctx, reserved.KeyDID, did)
	}
	return acct, undo, nil
}

// checkAvailable refuses a DID that has an account here, and a handle or email another account has (checked
// again atomically when the account row is written).
func (s *Service) checkAvailable(ctx context.Context, did syntax.DID, handle, email string) error {
	if _, err := s.AccountByDID(ctx, did); err == nil {
		return xrpc.InvalidRequest("Account already exists: %s", did)
	}
	if _, err := s.AccountByHandle(ctx, handle); err == nil {
		return xrpcerr.HandleTaken(handle)
	}
	if _, err := s.AccountByEmail(ctx, email); err == nil {
		return xrpc.InvalidRequest("Email already taken: %s", email)
	}
	return nil
}

// createDeactivated writes a deactivated account for did with signingKey and its empty repository, whose
// genesis commit is never sequenced. undo removes both.
func (s *Service) createDeactivated(ctx context.Context, did syntax.DID, handle string, in NewAccount, signingKey *atcrypto.PrivateKeyK256) (acct *accountstore.Account, undo func(), err error) {
	passwordHash, err := HashPassword(in.Password)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	acct = &accountstore.Account{
		DID:           did,
		Handle:        handle,
		Email:         in.Email,
		PasswordHash:  passwordHash,
		SigningKey:    signingKey.Bytes(),
		CreatedAt:     now,
		DeactivatedAt: &now,
	}
	if err := s.CreateAccount(ctx, acct, in.InviteCode); err != nil {
		return nil, nil, xrpcerr.AccountClaim(err, acct)
	}
	undo = func() {
		bg := context.WithoutCancel(ctx)
		s.d.Repos.Delete(bg, did)
		s.DeleteAccount(bg, did)
	}
	commit, err := s.d.Repos.Create(ctx, did, signingKey)
	if err != nil {
		undo()
		return nil, nil, err
	}
	// A deactivated account's genesis commit is never sequenced (activation announces the head with #sync
	// instead): drop it from the outbox so crash recovery cannot send it later.
	if err := s.d.Repos.With(ctx, did, func(r *repo.Repo) error { return r.TrimOutbox(ctx, commit.Rev) }); err != nil {
		undo()
		return nil, nil, err
	}
	return acct, undo, nil
}

// DIDDocument is the DID document this server maintains for a hosted account.
func (s *Service) DIDDocument(acct *accountstore.Account) map[string]any {
	vm := []any{}
	if key, err := acct.Signer(); err == nil {
		if pub, err := key.PublicKey(); err == nil {
			vm = append(vm, map[string]any{
				"id":                 acct.DID.String() + "#atproto",
				"type":               "Multikey",
				"controller":         acct.DID,
				"publicKeyMultibase": pub.Multibase(),
			})
		}
	}
	return map[string]any{
		"@context": []string{
			"https://www.w3.org/ns/did/v1",
			"https://w3id.org/security/multikey/v1",
			"https://w3id.org/security/suites/secp256k1-2019/v1",
		},
		"id":                 acct.DID.String(),
		"alsoKnownAs":        []string{"at://" + acct.Handle},
		"verificationMethod": vm,
		"service": []any{map[string]any{
			"id":              "#atproto_pds",
			"type":            "AtprotoPersonalDataServer",
			"serviceEndpoint": s.cfg.PublicURL,
		}},
	}
}
