package pds

import (
	"context"

	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// The com.atproto.admin API: every method is behind RequireAdmin (HTTP Basic admin:PDS_ADMIN_PASSWORD).

const (
	typeRepoRef     = "com.atproto.admin.defs#repoRef"
	typeStrongRef   = "com.atproto.repo.strongRef"
	typeRepoBlobRef = "com.atproto.admin.defs#repoBlobRef"
)

// accountView is com.atproto.admin.defs#accountView.
type accountView struct {
	DID              syntax.DID       `json:"did"`
	Handle           string           `json:"handle"`
	Email            string           `json:"email,omitempty"`
	IndexedAt        string           `json:"indexedAt"`
	InvitedBy        *inviteCodeView  `json:"invitedBy,omitempty"`
	Invites          []inviteCodeView `json:"invites"`
	InvitesDisabled  bool             `json:"invitesDisabled"`
	EmailConfirmedAt string           `json:"emailConfirmedAt,omitempty"`
	DeactivatedAt    string           `json:"deactivatedAt,omitempty"`
}

func fmtOptTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) accountView(ctx context.Context, a *accountstore.Account) (*accountView, error) {
	v := &accountView{
		DID: a.DID, Handle: a.Handle, Email: a.Email, IndexedAt: a.CreatedAt.UTC().Format(time.RFC3339Nano),
		InvitesDisabled: a.InvitesDisabled, EmailConfirmedAt: fmtOptTime(a.EmailConfirmedAt),
		DeactivatedAt: fmtOptTime(a.DeactivatedAt),
	}
	invites, err := s.accounts.InviteCodesForAccount(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	v.Invites = viewInviteCodes(invites)
	if by, err := s.accounts.InviteCodeUsedBy(ctx, a.DID); err == nil {
		iv := viewInviteCode(by)
		v.InvitedBy = &iv
	} else if !errors.Is(err, accountstore.ErrNotFound) {
		return nil, err
	}
	return v, nil
}

func (s *Server) handleAdminGetAccountInfo(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.AccountByDID(ctx, xrpc.ParamDID(c, "did"))
	if err != nil {
		return xrpcerr.AdminAccount(err)
	}
	v, err := s.accountView(ctx, acct)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) handleAdminGetAccountInfos(c echo.Context) error {
	ctx := c.Request().Context()
	dids := xrpc.ParamStrings(c, "dids")
	if len(dids) > 100 {
		return xrpc.InvalidRequest("At most 100 dids")
	}
	infos := []*accountView{}
	for _, did := range dids {
		acct, err := s.accounts.AccountByDID(ctx, syntax.DID(did))
		if errors.Is(err, accountstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		v, err := s.accountView(ctx, acct)
		if err != nil {
			return err
		}
		infos = append(infos, v)
	}
	return c.JSON(http.StatusOK, map[string]any{"infos": infos})
}

func (s *Server) handleAdminSearchAccounts(c echo.Context) error {
	ctx := c.Request().Context()
	limit := xrpc.ParamInt(c, "limit", 50)
	accts, err := s.accounts.SearchAccounts(ctx, xrpc.ParamString(c, "email"), xrpc.ParamString(c, "cursor"), limit)
	if err != nil {
		return err
	}
	views := make([]*accountView, 0, len(accts))
	for _, a := range accts {
		v, err := s.accountView(ctx, a)
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	out := map[string]any{"accounts": views}
	if len(accts) == limit {
		out["cursor"] = accts[len(accts)-1].DID
	}
	return c.JSON(http.StatusOK, out)
}

// subjectRef is the union of subjects updateSubjectStatus and getSubjectStatus talk about.
type subjectRef struct {
	Type      string `json:"$type"`
	DID       string `json:"did,omitempty"`
	URI       string `json:"uri,omitempty"`
	CID       string `json:"cid,omitempty"`
	RecordURI string `json:"recordUri,omitempty"`
}

type statusAttr struct {
	Applied bool   `json:"applied"`
	Ref     string `json:"ref,omitempty"`
}

func (s *Server) handleAdminUpdateSubjectStatus(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Subject     subjectRef  `json:"subject"`
		Takedown    *statusAttr `json:"takedown"`
		Deactivated *statusAttr `json:"deactivated"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	subj := in.Subject
	switch subj.Type {
	case typeRepoRef:
		acct, err := s.accounts.Find(ctx, subj.DID)
		if err != nil {
			return err
		}
		if in.Takedown != nil {
			if err := s.accounts.TakeDownAccount(ctx, acct.DID, accounts.TakedownRef(in.Takedown.Applied, in.Takedown.Ref)); err != nil {
				return err
			}
		}
		if in.Deactivated != nil {
			if acct, err = s.accounts.AccountByDID(ctx, acct.DID); err != nil {
				return err
			}
			if in.Deactivated.Applied && acct.DeactivatedAt == nil {
				err = s.accounts.Deactivate(ctx, acct, nil)
			} else if !in.Deactivated.Applied && acct.DeactivatedAt != nil {
				err = s.accounts.Activate(ctx, acct)
			}
			if err != nil {
				return err
			}
		}
	case typeStrongRef:
		uri, err := syntax.ParseATURI(subj.URI)
		if err != nil || uri.Collection() == "" || uri.RecordKey() == "" {
			return xrpc.InvalidRequest("Invalid record uri")
		}
		acct, err := s.accounts.Find(ctx, uri.Authority().String())
		if err != nil {
			return err
		}
		if in.Takedown != nil {
			canonical := repo.RecordURI(acct.DID, uri.Collection().String(), uri.RecordKey().String())
			if err := s.accounts.TakeDownRecord(ctx, acct.DID, canonical, subj.CID, accounts.TakedownRef(in.Takedown.Applied, in.Takedown.Ref)); err != nil {
				return err
			}
		}
	case typeRepoBlobRef:
		acct, err := s.accounts.Find(ctx, subj.DID)
		if err != nil {
			return err
		}
		if in.Takedown != nil {
			if err := s.accounts.TakeDownBlob(ctx, acct.DID, subj.CID, accounts.TakedownRef(in.Takedown.Applied, in.Takedown.Ref)); err != nil {
				return err
			}
		}
	default:
		return xrpc.InvalidRequest("Invalid subject")
	}
	out := map[string]any{"subject": subj}
	if in.Takedown != nil {
		out["takedown"] = in.Takedown
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleAdminGetSubjectStatus(c echo.Context) error {
	ctx := c.Request().Context()
	did, uriParam, blob := xrpc.ParamDID(c, "did"), xrpc.ParamString(c, "uri"), xrpc.ParamString(c, "blob")
	notFound := xrpc.NewError(http.StatusBadRequest, xrpc.NameNotFound, "Subject not found")
	switch {
	case uriParam != "":
		uri, err := syntax.ParseATURI(uriParam)
		if err != nil || uri.Collection() == "" || uri.RecordKey() == "" {
			return xrpc.InvalidRequest("Invalid record uri")
		}
		acct, err := s.accounts.Lookup(ctx, uri.Authority().String())
		if errors.Is(err, accountstore.ErrNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		canonical := repo.RecordURI(acct.DID, uri.Collection().String(), uri.RecordKey().String())
		r, err := s.repos.Repo(ctx, acct.DID)
		if err != nil {
			return xrpcerr.Repo(err)
		}
		recCID, _, err := r.GetRecord(ctx, uri.Collection().String(), uri.RecordKey().String())
		r.Release()
		if errors.Is(err, repo.ErrRecordNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		ref, err := s.accounts.RecordTakedownRef(ctx, acct.DID, canonical)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{
			"subject":  subjectRef{Type: typeStrongRef, URI: canonical, CID: recCID.String()},
			"takedown": statusAttr{Applied: ref != "", Ref: ref},
		})
	case blob != "":
		if did == "" {
			return xrpc.InvalidRequest("Must provide a did to request blob state")
		}
		if _, err := s.accounts.AccountByDID(ctx, did); errors.Is(err, accountstore.ErrNotFound) {
			return notFound
		} else if err != nil {
			return err
		}
		ref, err := s.accounts.BlobTakedown(ctx, did, blob)
		if err != nil && !errors.Is(err, accountstore.ErrNotFound) {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{
			"subject":  subjectRef{Type: typeRepoBlobRef, DID: did.String(), CID: blob},
			"takedown": statusAttr{Applied: ref != "", Ref: ref},
		})
	case did != "":
		acct, err := s.accounts.AccountByDID(ctx, did)
		if errors.Is(err, accountstore.ErrNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{
			"subject":     subjectRef{Type: typeRepoRef, DID: acct.DID.String()},
			"takedown":    statusAttr{Applied: acct.TakedownRef != "", Ref: acct.TakedownRef},
			"deactivated": statusAttr{Applied: acct.DeactivatedAt != nil},
		})
	}
	return xrpc.InvalidRequest("No provided subject")
}

func (s *Server) handleAdminUpdateAccountHandle(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		DID    string `json:"did"`
		Handle string `json:"handle"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.Find(ctx, in.DID)
	if err != nil {
		return err
	}
	if err := s.accounts.ChangeHandle(ctx, acct, in.Handle); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleAdminUpdateAccountEmail(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Account string `json:"account"`
		Email   string `json:"email"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if !accounts.ValidEmail(email) {
		return xrpc.InvalidRequest("This email address is not supported, please use a different email.")
	}
	acct, err := s.accounts.Find(ctx, in.Account)
	if err != nil {
		return err
	}
	if err := s.accounts.UpdateEmail(ctx, acct.DID, email); err != nil {
		return xrpcerr.EmailUpdate(err)
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleAdminUpdateAccountPassword(c echo.Context) error {
	var in struct {
		DID      string `json:"did"`
		Password string `json:"password"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.Password == "" || len(in.Password) > accounts.MaxPasswordLength {
		return xrpc.InvalidRequest("Invalid password length.")
	}
	if err := s.accounts.SetPassword(c.Request().Context(), syntax.DID(in.DID), in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleAdminDeleteAccount(c echo.Context) error {
	var in struct {
		DID string `json:"did"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if err := s.accounts.Delete(c.Request().Context(), syntax.DID(in.DID)); err != nil {
		if errors.Is(err, accountstore.ErrNotFound) {
			return xrpcerr.AccountNotFound()
		}
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleAdminSetAccountInvites(disabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		var in struct {
			Account string `json:"account"`
			Note    string `json:"note"`
		}
		if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
			return err
		}
		if err := s.accounts.SetInvitesDisabled(c.Request().Context(), syntax.DID(in.Account), disabled); err != nil {
			return xrpcerr.Invite(err)
		}
		return c.NoContent(http.StatusOK)
	}
}

func (s *Server) handleAdminDisableInviteCodes(c echo.Context) error {
	var in struct {
		Codes    []string `json:"codes"`
		Accounts []string `json:"accounts"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if err := s.accounts.DisableInviteCodes(c.Request().Context(), in.Codes, in.Accounts); err != nil {
		return xrpcerr.Invite(err)
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) handleAdminGetInviteCodes(c echo.Context) error {
	sort := accountstore.InviteSort(xrpc.ParamString(c, "sort"))
	switch sort {
	case "":
		sort = accountstore.InviteSortRecent
	case accountstore.InviteSortRecent, accountstore.InviteSortUsage:
	default:
		return xrpc.InvalidRequest("unknown sort method: %s", sort)
	}
	codes, cursor, err := s.accounts.ListInviteCodes(c.Request().Context(), sort, xrpc.ParamString(c, "cursor"), xrpc.ParamInt(c, "limit", 100))
	if err != nil {
		return xrpcerr.Invite(err)
	}
	out := map[string]any{"codes": viewInviteCodes(codes)}
	if cursor != "" {
		out["cursor"] = cursor
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleAdminSendEmail(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		RecipientDID string `json:"recipientDid"`
		Content      string `json:"content"`
		Subject      string `json:"subject"`
		SenderDID    string `json:"senderDid"`
		Comment      string `json:"comment"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.AccountByDID(ctx, syntax.DID(in.RecipientDID))
	if err != nil {
		return xrpcerr.Recipient(err)
	}
	if acct.Email == "" {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	subject := in.Subject
	if subject == "" {
		subject = "Message via your PDS"
	}
	// Moderators write HTML; the text part carries the same content for plain-text readers.
	htmlBody := ""
	if strings.Contains(in.Content, "<") {
		htmlBody = in.Content
	}
	if err := s.accounts.SendMail(ctx, acct.Email, subject, in.Content, htmlBody); err != nil {
		return err
	}
	s.log.Info("admin email sent", "recipient", acct.DID, "sender", in.SenderDID, "comment", in.Comment)
	return c.JSON(http.StatusOK, map[string]bool{"sent": true})
}
