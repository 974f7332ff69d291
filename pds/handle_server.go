package pds

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleDescribeServer(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"did":                       s.cfg.ServiceDID,
		"availableUserDomains":      s.cfg.ServiceHandleDomains,
		"inviteCodeRequired":        s.cfg.InviteRequired,
		"phoneVerificationRequired": false,
		"links":                     map[string]any{},
		"contact":                   map[string]any{},
	})
}

type createAccountInput struct {
	Email             string `json:"email"`
	Handle            string `json:"handle"`
	DID               string `json:"did"`
	InviteCode        string `json:"inviteCode"`
	Password          string `json:"password"`
	RecoveryKey       string `json:"recoveryKey"`
	PLCOp             *any   `json:"plcOp"`
	VerificationCode  string `json:"verificationCode"`
	VerificationPhone string `json:"verificationPhone"`
}

// sessionOutput is what createAccount, createSession and refreshSession return.
type sessionOutput struct {
	AccessJwt       string         `json:"accessJwt"`
	RefreshJwt      string         `json:"refreshJwt"`
	Handle          string         `json:"handle"`
	DID             string         `json:"did"`
	DIDDoc          map[string]any `json:"didDoc,omitempty"`
	Email           string         `json:"email,omitempty"`
	EmailConfirmed  *bool          `json:"emailConfirmed,omitempty"`
	EmailAuthFactor *bool          `json:"emailAuthFactor,omitempty"`
	Active          *bool          `json:"active,omitempty"`
	Status          string         `json:"status,omitempty"`
}

func (s *Server) handleCreateAccount(c echo.Context) error {
	ctx := c.Request().Context()
	var in createAccountInput
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.PLCOp != nil {
		return xrpc.InvalidRequest("Unsupported input: plcOp")
	}
	if s.cfg.InviteRequired && in.InviteCode == "" {
		return xrpc.NewError(http.StatusBadRequest, "InvalidInviteCode", "No invite code provided")
	}
	if in.Email == "" {
		return xrpc.InvalidRequest("Email is required")
	}
	if addr, err := mail.ParseAddress(in.Email); err != nil || addr.Address != in.Email || !strings.Contains(in.Email, ".") {
		return xrpc.InvalidRequest("This email address is not supported, please use a different email.")
	}
	if in.Password == "" {
		return xrpc.InvalidRequest("Password is required")
	}
	if len(in.Password) > 256 {
		return xrpc.InvalidRequest("Password too long")
	}
	if in.DID != "" {
		return s.createAccountWithDID(c, &in) // handle_account.go: an existing DID, proven by service auth
	}
	handle, err := s.accounts.NormalizeServiceHandle(in.Handle)
	if err != nil {
		return err
	}
	if _, err := s.accounts.AccountByHandle(ctx, handle); err == nil {
		return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
	}
	if _, err := s.accounts.AccountByEmail(ctx, in.Email); err == nil {
		return xrpc.InvalidRequest("Email already taken: %s", in.Email)
	}
	rotationKeys := []string{}
	if in.RecoveryKey != "" {
		if _, err := atcrypto.ParsePublicDIDKey(in.RecoveryKey); err != nil {
			return xrpc.InvalidRequest("Invalid recovery key: must be a did:key")
		}
		rotationKeys = append(rotationKeys, in.RecoveryKey)
	}
	if s.cfg.RecoveryDIDKey != "" {
		rotationKeys = append(rotationKeys, s.cfg.RecoveryDIDKey)
	}
	rotPub, err := s.cfg.RotationKey.PublicKey()
	if err != nil {
		return err
	}
	rotationKeys = append(rotationKeys, rotPub.DIDKey())

	signingKey, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		return err
	}
	signingPub, err := signingKey.PublicKey()
	if err != nil {
		return err
	}
	op := plc.NewGenesis(signingPub, rotationKeys, handle, s.cfg.PublicURL)
	if err := op.Sign(s.cfg.RotationKey); err != nil {
		return err
	}
	did, err := op.DID()
	if err != nil {
		return err
	}
	passwordHash, err := accounts.HashPassword(in.Password)
	if err != nil {
		return err
	}
	acct := &accountstore.Account{
		DID:          did,
		Handle:       handle,
		Email:        in.Email,
		PasswordHash: passwordHash,
		SigningKey:   signingKey.Bytes(),
		CreatedAt:    time.Now(),
	}
	// Order matters for crash safety (see recoverAccount): the DID exists at the PLC directory before
	// anything local names it; the repo exists (with its genesis commit in the outbox, the account marked
	// dirty) before the account row; the account row claims the handle and email atomically, and a failure
	// there undoes the repo. A crash at any point leaves either nothing local (an unused DID at the
	// directory, as the reference can) or an account whose creation events recovery emits.
	if in.InviteCode != "" {
		// Checked again atomically with the account row; checked here so a bad code costs no DID.
		if err := s.accounts.InviteCodeAvailable(ctx, in.InviteCode); err != nil {
			return xrpc.NewError(http.StatusBadRequest, "InvalidInviteCode", "Provided invite code not available")
		}
	}
	if err := s.plc.Submit(ctx, did, op); err != nil {
		s.log.Error("PLC directory refused the genesis operation", "did", did, "err", err)
		return xrpc.NewError(http.StatusBadGateway, "UpstreamFailure", "The PLC directory did not accept the new DID")
	}
	undo := func() {
		bg := context.WithoutCancel(ctx)
		s.repos.Delete(bg, syntax.DID(did))
		s.seq.Forget(bg, did)
	}
	if err := s.seq.MarkDirty(ctx, did); err != nil {
		return err
	}
	commit, err := s.repos.Create(ctx, syntax.DID(did), signingKey)
	if err != nil {
		undo()
		return err
	}
	if err := s.accounts.CreateAccount(ctx, acct, in.InviteCode); err != nil {
		undo()
		switch {
		case errors.Is(err, accountstore.ErrHandleTaken):
			return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
		case errors.Is(err, accountstore.ErrEmailTaken):
			return xrpc.InvalidRequest("Email already taken: %s", in.Email)
		case errors.Is(err, accountstore.ErrInvalidInvite):
			return xrpc.NewError(http.StatusBadRequest, "InvalidInviteCode", "Provided invite code not available")
		}
		return err
	}
	// Same order as the reference: identity, account, commit, sync.
	s.seq.EnqueueIdentity(did, handle)
	s.seq.EnqueueAccount(did, true, "")
	s.seq.EnqueueCommit(commit.Event)
	s.seq.EnqueueSync(did, commit.Rev, commit.SyncCAR())

	tokens, err := s.auth.CreateSession(ctx, acct, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sessionOutput{
		AccessJwt:  tokens.Access,
		RefreshJwt: tokens.Refresh,
		Handle:     handle,
		DID:        did,
		DIDDoc:     s.didDocument(acct),
	})
}

// didDocument is the DID document this server maintains for a hosted account.
func (s *Server) didDocument(acct *accountstore.Account) map[string]any {
	vm := []any{}
	if key, err := acct.Signer(); err == nil {
		if pub, err := key.PublicKey(); err == nil {
			vm = append(vm, map[string]any{
				"id":                 acct.DID + "#atproto",
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
		"id":                 acct.DID,
		"alsoKnownAs":        []string{"at://" + acct.Handle},
		"verificationMethod": vm,
		"service": []any{map[string]any{
			"id":              "#atproto_pds",
			"type":            "AtprotoPersonalDataServer",
			"serviceEndpoint": s.cfg.PublicURL,
		}},
	}
}

type createSessionInput struct {
	Identifier      string `json:"identifier"`
	Password        string `json:"password"`
	AuthFactorToken string `json:"authFactorToken"`
	AllowTakendown  bool   `json:"allowTakendown"`
}

func (s *Server) handleCreateSession(c echo.Context) error {
	ctx := c.Request().Context()
	var in createSessionInput
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.Identifier == "" || in.Password == "" {
		return xrpc.InvalidRequest("identifier and password are required")
	}
	acct, err := s.accounts.Lookup(ctx, in.Identifier)
	if err != nil && !errors.Is(err, accountstore.ErrNotFound) {
		return err
	}
	if acct == nil {
		return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Invalid identifier or password")
	}
	// The account password first, then the account's app passwords.
	appPassword := ""
	if !accounts.VerifyPassword(in.Password, acct.PasswordHash) {
		ap, err := s.auth.VerifyAppPassword(ctx, acct.DID, in.Password)
		if err != nil {
			return err
		}
		if ap == nil {
			return xrpc.NewError(http.StatusUnauthorized, "AuthenticationRequired", "Invalid identifier or password")
		}
		appPassword = ap.Name
	}
	if acct.TakedownRef != "" && !in.AllowTakendown {
		return xrpc.NewError(http.StatusUnauthorized, "AccountTakedown", "Account has been taken down")
	}
	tokens, err := s.auth.CreateSession(ctx, acct, appPassword)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionOutput(acct, tokens))
}

func (s *Server) sessionOutput(acct *accountstore.Account, tokens *auth.TokenPair) sessionOutput {
	confirmed := acct.EmailConfirmedAt != nil
	factor := false
	active := acct.Active()
	out := sessionOutput{
		Handle:          acct.Handle,
		DID:             acct.DID,
		DIDDoc:          s.didDocument(acct),
		Email:           acct.Email,
		EmailConfirmed:  &confirmed,
		EmailAuthFactor: &factor,
		Active:          &active,
		Status:          acct.Status(),
	}
	if tokens != nil {
		out.AccessJwt, out.RefreshJwt = tokens.Access, tokens.Refresh
	}
	return out
}

func (s *Server) handleGetSession(c echo.Context) error {
	acct, err := s.accounts.AccountByDID(c.Request().Context(), auth.CallerOf(c).DID.String())
	if errors.Is(err, accountstore.ErrNotFound) {
		return xrpc.NewError(http.StatusBadRequest, "AccountNotFound", "Account not found")
	}
	if err != nil {
		return err
	}
	out := s.sessionOutput(acct, nil)
	return c.JSON(http.StatusOK, struct {
		sessionOutput
		AccessJwt  string `json:"accessJwt,omitempty"`
		RefreshJwt string `json:"refreshJwt,omitempty"`
	}{sessionOutput: out})
}

func (s *Server) handleRefreshSession(c echo.Context) error {
	acct, tokens, err := s.auth.RefreshSession(c.Request())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionOutput(acct, tokens))
}

func (s *Server) handleDeleteSession(c echo.Context) error {
	if err := s.auth.DeleteSession(c.Request()); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleCheckAccountStatus(c echo.Context) error {
	ctx := c.Request().Context()
	did := auth.CallerOf(c).DID.String()
	acct, err := s.accounts.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	r, err := s.repos.Repo(ctx, syntax.DID(did))
	if err != nil {
		return err
	}
	defer r.Release()
	head, err := r.Head(ctx)
	if err != nil {
		return err
	}
	records, err := r.RecordCount(ctx)
	if err != nil {
		return err
	}
	blocks, err := r.BlockCount(ctx)
	if err != nil {
		return err
	}
	expectedBlobs, importedBlobs, err := r.BlobCounts(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"activated":          acct.DeactivatedAt == nil,
		"validDid":           s.accounts.CheckDIDDocument(ctx, acct) == nil,
		"repoCommit":         head.Commit.String(),
		"repoRev":            head.Rev,
		"repoBlocks":         blocks,
		"indexedRecords":     records,
		"privateStateValues": 0,
		"expectedBlobs":      expectedBlobs,
		"importedBlobs":      importedBlobs,
	})
}

type createInviteCodeInput struct {
	UseCount   int    `json:"useCount"`
	ForAccount string `json:"forAccount"`
}

func (s *Server) handleCreateInviteCode(c echo.Context) error {
	var in createInviteCodeInput
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.UseCount < 1 {
		return xrpc.InvalidRequest("useCount must be at least 1")
	}
	forAccount := in.ForAccount
	if forAccount == "" {
		forAccount = "admin"
	}
	code := inviteCode(s.cfg.Hostname)
	if err := s.accounts.CreateInviteCode(c.Request().Context(), code, in.UseCount, forAccount, "admin"); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"code": code})
}

// inviteCode makes a code in the reference's shape: <hostname with dashes>-xxxxx-xxxxx.
func inviteCode(hostname string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := []byte(auth.RandomID())
	part := func(off int) string {
		out := make([]byte, 5)
		for i := range out {
			out[i] = alphabet[int(b[off+i])%len(alphabet)]
		}
		return string(out)
	}
	return strings.ReplaceAll(hostname, ".", "-") + "-" + part(0) + "-" + part(5)
}
