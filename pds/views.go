package pds

import (
	"time"

	"github.com/pdsgo/pds/pds/accountstore"
)

// Output shapes more than one handler file answers with.

// inviteCodeView is com.atproto.server.defs#inviteCode.
type inviteCodeView struct {
	Code       string          `json:"code"`
	Available  int             `json:"available"`
	Disabled   bool            `json:"disabled"`
	ForAccount string          `json:"forAccount"`
	CreatedBy  string          `json:"createdBy"`
	CreatedAt  string          `json:"createdAt"`
	Uses       []inviteUseView `json:"uses"`
}

type inviteUseView struct {
	UsedBy string `json:"usedBy"`
	UsedAt string `json:"usedAt"`
}

func viewInviteCode(c *accountstore.InviteCode) inviteCodeView {
	v := inviteCodeView{Code: c.Code, Available: c.Available, Disabled: c.Disabled, ForAccount: c.ForAccount,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt.UTC().Format(time.RFC3339Nano), Uses: []inviteUseView{}}
	for _, u := range c.Uses {
		v.Uses = append(v.Uses, inviteUseView{UsedBy: u.UsedBy, UsedAt: u.UsedAt.UTC().Format(time.RFC3339Nano)})
	}
	return v
}

func viewInviteCodes(codes []*accountstore.InviteCode) []inviteCodeView {
	out := make([]inviteCodeView, 0, len(codes))
	for _, c := range codes {
		out = append(out, viewInviteCode(c))
	}
	return out
}
