package pds

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
)

// maxInviteCodesPerCall bounds createInviteCodes (codeCount x forAccounts) so one call cannot fill the disk.
const maxInviteCodesPerCall = 1000

func (s *Server) handleCreateInviteCodes(c echo.Context) error {
	var in struct {
		CodeCount   *int     `json:"codeCount"`
		UseCount    int      `json:"useCount"`
		ForAccounts []string `json:"forAccounts"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	count := 1
	if in.CodeCount != nil {
		count = *in.CodeCount
	}
	if count < 1 || in.UseCount < 1 {
		return xrpc.InvalidRequest("codeCount and useCount must be at least 1")
	}
	forAccounts := in.ForAccounts
	if len(forAccounts) == 0 {
		forAccounts = []string{"admin"}
	}
	if count*len(forAccounts) > maxInviteCodesPerCall {
		return xrpc.InvalidRequest("At most %d codes per call", maxInviteCodesPerCall)
	}
	type accountCodes struct {
		Account string   `json:"account"`
		Codes   []string `json:"codes"`
	}
	out := []accountCodes{}
	for _, acct := range forAccounts {
		codes := make([]string, count)
		for i := range codes {
			codes[i] = accounts.NewInviteCode(s.cfg.Hostname)
		}
		if err := s.accounts.CreateInviteCodes(c.Request().Context(), codes, in.UseCount, acct, "admin", false); err != nil {
			return err
		}
		out = append(out, accountCodes{Account: acct, Codes: codes})
	}
	return c.JSON(http.StatusOK, map[string]any{"codes": out})
}

// maxOpenEarnedCodes is how many unused earned codes a user may hold (the reference's 5).
const maxOpenEarnedCodes = 5

func (s *Server) handleGetAccountInviteCodes(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	includeUsed := xrpc.ParamBool(c, "includeUsed", true)
	createAvailable := xrpc.ParamBool(c, "createAvailable", true)
	codes, err := s.accounts.InviteCodesForAccount(ctx, acct.DID)
	if err != nil {
		return err
	}
	if createAvailable && s.cfg.InviteRequired && s.cfg.InviteInterval > 0 {
		if n := s.earnedCodesToCreate(acct, codes, time.Now()); n > 0 {
			created := make([]string, n)
			for i := range created {
				created[i] = accounts.NewInviteCode(s.cfg.Hostname)
			}
			// An account whose invites are disabled still earns codes, born disabled (bookkeeping, as the
			// reference), so enabling invites later does not hand out a burst.
			if err := s.accounts.CreateInviteCodes(ctx, created, 1, acct.DID.String(), acct.DID.String(), acct.InvitesDisabled); err != nil {
				return err
			}
			if codes, err = s.accounts.InviteCodesForAccount(ctx, acct.DID); err != nil {
				return err
			}
		}
	}
	out := []inviteCodeView{}
	for _, code := range codes {
		if code.Disabled || (!includeUsed && len(code.Uses) >= code.Available) {
			continue
		}
		out = append(out, viewInviteCode(code))
	}
	return c.JSON(http.StatusOK, map[string]any{"codes": out})
}

// earnedCodesToCreate is how many codes a user has earned (one per PDS_INVITE_INTERVAL of account age, counted
// from PDS_INVITE_EPOCH) and not yet received, never leaving more than five unused. Codes an admin gave the
// account do not count.
func (s *Server) earnedCodesToCreate(acct *accountstore.Account, codes []*accountstore.InviteCode, now time.Time) int {
	interval, epoch := s.cfg.InviteInterval, s.cfg.InviteEpoch
	var routine, unused, sinceEpoch int
	for _, c := range codes {
		if c.CreatedBy == "admin" {
			continue
		}
		routine++
		if !c.Disabled && len(c.Uses) < c.Available {
			unused++
		}
		if c.CreatedAt.After(epoch) {
			sinceEpoch++
		}
	}
	start := acct.CreatedAt
	if start.Before(epoch) {
		start = epoch
	}
	earned := 0
	if now.After(start) {
		earned = int(now.Sub(acct.CreatedAt)/interval) - int(start.Sub(acct.CreatedAt)/interval)
	}
	return max(0, min(maxOpenEarnedCodes-unused, earned-sinceEpoch))
}
