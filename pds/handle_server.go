package pds

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleDescribeServer(c echo.Context) error {
	links, contact := map[string]any{}, map[string]any{}
	if s.cfg.PrivacyPolicyURL != "" {
		links["privacyPolicy"] = s.cfg.PrivacyPolicyURL
	}
	if s.cfg.TermsOfServiceURL != "" {
		links["termsOfService"] = s.cfg.TermsOfServiceURL
	}
	if s.cfg.ContactEmailAddress != "" {
		contact["email"] = s.cfg.ContactEmailAddress
	}
	return c.JSON(http.StatusOK, map[string]any{
		"did":                       s.cfg.ServiceDID,
		"availableUserDomains":      s.cfg.ServiceHandleDomains,
		"inviteCodeRequired":        s.cfg.InviteRequired,
		"phoneVerificationRequired": false,
		"links":                     links,
		"contact":                   contact,
	})
}

type createAccountInput struct {
	Email             string          `json:"email"`
	Handle            string          `json:"handle"`
	DID               string          `json:"did"`
	InviteCode        string          `json:"inviteCode"`
	Password          string          `json:"password"`
	RecoveryKey       string          `json:"recoveryKey"`
	PLCOp             json.RawMessage `json:"plcOp"`
	VerificationCode  string          `json:"verificationCode"`
	VerificationPhone string          `json:"verificationPhone"`
}

// sessionOutput is what createAccount, createSession and refreshSession return.
type sessionOutput struct {
	AccessJwt       string         `json:"accessJwt"`
	RefreshJwt      string         `json:"refreshJwt"`
	Handle          string         `json:"handle"`
	DID             syntax.DID     `json:"did"`
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
	hasPLCOp := len(in.PLCOp) > 0 && string(in.PLCOp) != "null"
	if hasPLCOp && in.DID == "" {
		return xrpc.InvalidRequest("plcOp requires the did it is an operation of")
	}
	if s.cfg.InviteRequired && in.InviteCode == "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidInviteCode, "No invite code provided")
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
	if hasPLCOp {
		return s.createAccountWithPLCOp(c, &in) // the client's own PLC operation, naming a reserved key
	}
	if in.DID != "" {
		return s.createAccountWithDID(c, &in) // an existing DID, proven by service auth
	}
	acct, err := s.accounts.Create(ctx, accounts.NewAccount{
		Handle: in.Handle, Email: in.Email, Password: in.Password, InviteCode: in.InviteCode, RecoveryKey: in.RecoveryKey,
	})
	if err != nil {
		return err
	}
	return s.newAccountSession(c, acct)
}

// newAccountSession signs a new account in and answers createAccount with its tokens and DID document.
func (s *Server) newAccountSession(c echo.Context, acct *accountstore.Account) error {
	tokens, err := s.auth.CreateSession(c.Request().Context(), acct, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sessionOutput{
		AccessJwt:  tokens.Access,
		RefreshJwt: tokens.Refresh,
		Handle:     acct.Handle,
		DID:        acct.DID,
		DIDDoc:     s.accounts.DIDDocument(acct),
	})
}

// createAccountWithDID creates an account for a DID the caller already controls (accounts.CreateWithDID): the
// caller proves control with a service-auth JWT signed by the key in the DID document as it is now (for a
// migration: issued by the old PDS with getServiceAuth, aud this server's DID, lxm createAccount).
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
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Missing auth to create account with did: %s", did)
	}
	iss, err := s.auth.ServiceAuth(ctx, raw, "com.atproto.server.createAccount")
	if err != nil {
		s.log.Info("createAccount: service auth refused", "did", did, "err", err)
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Service auth token could not be verified for did: %s", did)
	}
	if iss != did {
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Missing auth to create account with did: %s", did)
	}
	acct, undo, err := s.accounts.CreateWithDID(ctx, did, accounts.NewAccount{
		Handle: in.Handle, Email: in.Email, Password: in.Password, InviteCode: in.InviteCode,
	})
	if err != nil {
		return err
	}
	tokens, err := s.auth.CreateSession(ctx, acct, "")
	if err != nil {
		undo()
		return err
	}
	out := sessionOutput{AccessJwt: tokens.Access, RefreshJwt: tokens.Refresh, Handle: acct.Handle, DID: acct.DID}
	if ident, err := s.accounts.ResolveDIDDoc(ctx, did, false); err == nil {
		if b, err := json.Marshal(ident.DIDDocument()); err == nil {
			json.Unmarshal(b, &out.DIDDoc)
		}
	}
	return c.JSON(http.StatusOK, out)
}

// createAccountWithPLCOp creates an account for in.DID with the PLC operation the client signed (the
// reference's entryway flow, served here without an entryway): the operation proves control of the DID and
// points it at this server with a key reserved by reserveSigningKey (accounts.CreateWithPLCOp).
func (s *Server) createAccountWithPLCOp(c echo.Context, in *createAccountInput) error {
	ctx := c.Request().Context()
	did, err := syntax.ParseDID(in.DID)
	if err != nil {
		return xrpc.InvalidRequest("Invalid DID: %s", in.DID)
	}
	parsed, err := plc.ParseOperation(in.PLCOp)
	op, ok := parsed.(*plc.Operation)
	if err != nil || !ok {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameIncompatibleDidDoc, "invalid plc operation")
	}
	acct, err := s.accounts.CreateWithPLCOp(ctx, did, accounts.NewAccount{
		Handle: in.Handle, Email: in.Email, Password: in.Password, InviteCode: in.InviteCode,
	}, op)
	if err != nil {
		return err
	}
	return s.newAccountSession(c, acct)
}

func (s *Server) handleReserveSigningKey(c echo.Context) error {
	var in struct {
		DID string `json:"did"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	var did syntax.DID
	if in.DID != "" {
		d, err := syntax.ParseDID(in.DID)
		if err != nil {
			return xrpc.InvalidRequest("Invalid DID: %s", in.DID)
		}
		did = d
	}
	key, err := s.accounts.ReserveSigningKey(c.Request().Context(), did)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"signingKey": key})
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
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Invalid identifier or password")
	}
	// The account password first, then the account's app passwords.
	appPassword := ""
	if !accounts.VerifyPassword(in.Password, acct.PasswordHash) {
		ap, err := s.auth.VerifyAppPassword(ctx, acct.DID, in.Password)
		if err != nil {
			return err
		}
		if ap == nil {
			return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAuthenticationRequired, "Invalid identifier or password")
		}
		appPassword = ap.Name
	}
	if acct.TakedownRef != "" && !in.AllowTakendown {
		return xrpc.NewError(http.StatusUnauthorized, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	// Two-factor sign-in by email guards the account password; app passwords are for apps and skip it.
	if appPassword == "" {
		if err := s.accounts.SignInFactor(ctx, acct, in.AuthFactorToken); err != nil {
			return err
		}
	}
	tokens, err := s.auth.CreateSession(ctx, acct, appPassword)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.sessionOutput(acct, tokens))
}

func (s *Server) sessionOutput(acct *accountstore.Account, tokens *auth.TokenPair) sessionOutput {
	confirmed := acct.EmailConfirmedAt != nil
	factor := acct.EmailAuthFactor
	active := acct.Active()
	out := sessionOutput{
		Handle:          acct.Handle,
		DID:             acct.DID,
		DIDDoc:          s.accounts.DIDDocument(acct),
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
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	out := s.sessionOutput(acct, nil)
	if !auth.CallerOf(c).AllowsAccount("email", scope.ActionRead) {
		// An OAuth grant without account:email (or transition:email) does not see the address.
		out.Email, out.EmailConfirmed, out.EmailAuthFactor = "", nil, nil
	}
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
	did := auth.CallerOf(c).DID
	acct, err := s.accounts.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	r, err := s.repos.Repo(ctx, did)
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
	code := accounts.NewInviteCode(s.cfg.Hostname)
	if err := s.accounts.CreateInviteCode(c.Request().Context(), code, in.UseCount, forAccount, "admin"); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"code": code})
}
