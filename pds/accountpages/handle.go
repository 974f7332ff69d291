package accountpages

import (
	"context"
	"net/http"
	"strings"
	"time"
)

func (p *Pages) handlePage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Handle", "handle"
	v.Domains = p.accounts.ServiceHandleDomains()
	return "account-handle", nil
}

// handleAction: "service" sets a handle under one of the server's domains; "custom" shows the DNS and
// well-known instructions for a domain; "check" checks them live and, when they point at the account, offers
// the change; "change" makes it (checked again).
func (p *Pages) handleAction(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v := p.accountView(s, "", "")
	p.handlePage(ctx, s, v)
	status := http.StatusOK
	set := func(handle string) {
		if err := p.accounts.SetHandle(ctx, s.did(), handle); err != nil {
			v.Error, status = p.userMessage(err, "change your handle"), errStatus(err)
			return
		}
		acct, err := p.accounts.ByDID(ctx, s.did())
		if err == nil {
			v.Account.Handle = acct.Handle
		}
		v.Step, v.NewHandle = "", ""
		v.Notice = "Your handle is now @" + v.Account.Handle + "."
	}
	if !p.kit.AllowAccount(s.did(), "handle", 30, 5*time.Minute) {
		v.Error, status = "Too many attempts. Wait a few minutes and try again.", http.StatusTooManyRequests
		p.render(w, status, "account-handle", v)
		return
	}
	switch r.PostForm.Get("step") {
	case "service":
		name := strings.ToLower(strings.TrimSpace(r.PostForm.Get("name")))
		domain := r.PostForm.Get("domain")
		ok := false
		for _, d := range v.Domains {
			ok = ok || d == domain
		}
		if !ok || name == "" {
			v.Error, status = "Choose a name and one of this server's domains.", http.StatusBadRequest
			break
		}
		set(name + domain)
	case "custom", "check", "change":
		v.NewHandle = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(r.PostForm.Get("handle")), "@"), "."))
		v.Step = "custom"
		if v.NewHandle == "" {
			v.Error, status = "Enter your domain.", http.StatusBadRequest
			break
		}
		if r.PostForm.Get("step") == "custom" {
			break
		}
		h, err := p.accounts.CheckHandle(ctx, s.did(), v.NewHandle)
		if err != nil {
			v.Error, status = p.userMessage(err, "check the domain"), errStatus(err)
			if strings.Contains(v.Error, "did not resolve") {
				v.Error = "Neither the DNS record nor the file at " + v.NewHandle + " names your account yet. Check them (DNS changes can take a while to be seen) and try again."
			}
			break
		}
		v.NewHandle, v.Checked = h, true
		if r.PostForm.Get("step") == "change" {
			set(h)
		}
	default:
		v.Error, status = "Choose an action.", http.StatusBadRequest
	}
	p.render(w, status, "account-handle", v)
}
