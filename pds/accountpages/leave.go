package accountpages

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/accounts"
)

func (p *Pages) leavePage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Your data, deactivation and deletion", "leave"
	return "account-leave", nil
}

// handleExportRepo sends the account's repository as a CAR file to a browser signed in as it.
func (p *Pages) handleExportRepo(w http.ResponseWriter, r *http.Request) {
	s, ok := p.current(w, r, r.URL.Query().Get("account"))
	if !ok {
		p.renderError(w, http.StatusForbidden, "Sign in to download your data.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.ipld.car")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.car"`, strings.ReplaceAll(s.did().String(), ":", "_")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if err := p.accounts.WriteRepoCAR(r.Context(), s.did(), w); err != nil {
		p.log.Error("accountpages: export repo", "err", err) // the download is cut short; the browser shows it failed
	}
}

// handleExportBlobs sends the CIDs of the account's blobs, one a line (each can be fetched with
// com.atproto.sync.getBlob).
func (p *Pages) handleExportBlobs(w http.ResponseWriter, r *http.Request) {
	s, ok := p.current(w, r, r.URL.Query().Get("account"))
	if !ok {
		p.renderError(w, http.StatusForbidden, "Sign in to download your data.")
		return
	}
	cids, err := p.accounts.BlobCIDs(r.Context(), s.did())
	if err != nil {
		p.log.Error("accountpages: list blobs", "err", err)
		p.renderError(w, http.StatusInternalServerError, "The server could not list your files. Try again later.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="blobs.txt"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	for _, c := range cids {
		fmt.Fprintln(w, c)
	}
}

// leaveAction: "deactivate", "activate", "request-delete" (mails the token), "delete" (password and token).
func (p *Pages) leaveAction(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v := p.accountView(s, "", "")
	p.leavePage(ctx, s, v)
	status := http.StatusOK
	var err error
	switch r.PostForm.Get("step") {
	case "deactivate", "activate":
		active := r.PostForm.Get("step") == "activate"
		if err = p.accounts.SetActive(ctx, s.did(), active); err == nil {
			if !active {
				// Deactivation ends every session, this browser's sign-in included.
				v := p.view("Account deactivated")
				v.Notice = "Your account @" + s.account.Handle + " is deactivated and signed out everywhere. Sign in here again to reactivate it."
				p.render(w, http.StatusOK, "account-signedout", v)
				return
			}
			v.Deactivated = false
			v.Notice = "Your account is active again."
		}
	case "request-delete":
		if !p.kit.AllowAccount(s.did(), "delete", 15, time.Hour) {
			v.Error, status = "Too many codes asked for. Wait a while and try again.", http.StatusTooManyRequests
			break
		}
		if err = p.accounts.RequestDeletion(ctx, s.did()); err == nil {
			v.Step, v.Notice = "delete", "A code is on its way to your email address."
		}
	case "delete":
		v.Step = "delete"
		if !p.kit.AllowAccount(s.did(), "password", 10, 5*time.Minute) {
			v.Error, status = "Too many attempts. Wait a few minutes and try again.", http.StatusTooManyRequests
			break
		}
		err = p.accounts.DeleteWithToken(ctx, s.did(), r.PostForm.Get("password"), r.PostForm.Get("code"))
		if errors.Is(err, accounts.ErrWrongPassword) {
			err = nil
			v.Error, status = "Your password is not right.", http.StatusUnauthorized
			break
		}
		if err == nil {
			if err := p.kit.RevokeAccount(ctx, s.did()); err != nil {
				p.log.Error("accountpages: end sessions of a deleted account", "err", err)
			}
			v := p.view("Account deleted")
			v.Notice = "Your account @" + s.account.Handle + " is deleted. Its data is gone from this server."
			p.render(w, http.StatusOK, "account-signedout", v)
			return
		}
	default:
		v.Error, status = "Choose an action.", http.StatusBadRequest
	}
	if err != nil {
		v.Error, status = p.userMessage(err, "do that"), errStatus(err)
	}
	p.render(w, status, "account-leave", v)
}
