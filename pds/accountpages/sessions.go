package accountpages

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth"
)

func (p *Pages) sessionsPage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Sessions and apps", "sessions"
	oss, err := p.kit.Sessions(ctx, s.did())
	if err != nil {
		return "", err
	}
	for _, o := range oss {
		v.OAuthSessions = append(v.OAuthSessions, oauthSession{ID: o.ID, App: p.kit.App(ctx, o.ClientID),
			Permissions: p.kit.DescribeScope(ctx, o.Scope), Created: o.CreatedAt, LastUsed: o.UpdatedAt})
	}
	ls, err := p.creds.LegacySessions(ctx, s.did())
	if err != nil {
		return "", err
	}
	for _, l := range ls {
		v.LegacySessions = append(v.LegacySessions, legacySession{ID: l.ID, AppPassword: l.AppPasswordName, Expires: l.ExpiresAt})
	}
	return "account-sessions", nil
}

// showSessions renders the sessions page after an action.
func (p *Pages) showSessions(w http.ResponseWriter, r *http.Request, s *session, status int, notice, errMsg string) {
	v := p.accountView(s, "", "")
	if _, err := p.sessionsPage(r.Context(), s, v); err != nil {
		p.log.Error("accountpages: sessions", "err", err)
		p.renderError(w, http.StatusInternalServerError, "The server could not load your sessions. Try again later.")
		return
	}
	v.Notice, v.Error = notice, errMsg
	p.render(w, status, "account-sessions", v)
}

func (p *Pages) revoke(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	id := r.PostForm.Get("session")
	var err error
	switch r.PostForm.Get("kind") {
	case "oauth":
		err = p.kit.RevokeSession(ctx, s.did(), id)
		if errors.Is(err, oauth.ErrSessionNotFound) {
			err = accountstore.ErrNotFound
		}
	case "legacy":
		err = p.creds.RevokeLegacySession(ctx, s.did(), id)
	default:
		err = accountstore.ErrNotFound
	}
	switch {
	case errors.Is(err, accountstore.ErrNotFound):
		p.showSessions(w, r, s, http.StatusNotFound, "", "That session has already ended.")
	case err != nil:
		p.log.Error("accountpages: revoke", "err", err)
		p.showSessions(w, r, s, http.StatusInternalServerError, "", "The server could not end that session. Try again later.")
	default:
		p.showSessions(w, r, s, http.StatusOK, "The session has ended.", "")
	}
}

// revokeAll ends every session of the account: OAuth sessions (and the account's sign-in on every browser,
// this one included) and createSession sessions.
func (p *Pages) revokeAll(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	err := p.kit.RevokeAccount(ctx, s.did())
	if err == nil {
		err = p.creds.RevokeLegacySessions(ctx, s.did())
	}
	if err != nil {
		p.log.Error("accountpages: revoke all", "err", err)
		p.showSessions(w, r, s, http.StatusInternalServerError, "", "The server could not end every session. Try again later.")
		return
	}
	v := p.view("Signed out everywhere")
	v.Notice = "Every session of @" + s.account.Handle + " has ended, on every app and every browser, this one included."
	p.render(w, http.StatusOK, "account-signedout", v)
}

func (p *Pages) appPasswordsPage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "App passwords", "app-passwords"
	list, err := p.creds.AppPasswords(ctx, s.did())
	if err != nil {
		return "", err
	}
	v.AppPasswords = list
	return "account-app-passwords", nil
}

func (p *Pages) showAppPasswords(w http.ResponseWriter, r *http.Request, s *session, status int, v *view) {
	if _, err := p.appPasswordsPage(r.Context(), s, v); err != nil {
		p.log.Error("accountpages: app passwords", "err", err)
		p.renderError(w, http.StatusInternalServerError, "The server could not load your app passwords. Try again later.")
		return
	}
	p.render(w, status, "account-app-passwords", v)
}

func (p *Pages) createAppPassword(w http.ResponseWriter, r *http.Request, s *session) {
	v := p.accountView(s, "", "")
	name := strings.TrimSpace(r.PostForm.Get("name"))
	privileged := r.PostForm.Get("privileged") == "on"
	if name == "" || utf8.RuneCountInString(name) > 64 {
		v.Error = "Give the app password a name of 1 to 64 characters."
		p.showAppPasswords(w, r, s, http.StatusBadRequest, v)
		return
	}
	pw, _, err := p.creds.CreateAppPassword(r.Context(), s.did(), name, privileged)
	switch {
	case errors.Is(err, accountstore.ErrAppPasswordExists):
		v.Error = "You already have an app password named “" + name + "”."
		p.showAppPasswords(w, r, s, http.StatusConflict, v)
		return
	case err != nil:
		p.log.Error("accountpages: create app password", "err", err)
		v.Error = "The server could not create the app password. Try again later."
		p.showAppPasswords(w, r, s, http.StatusInternalServerError, v)
		return
	}
	v.NewAppPassword = &newAppPassword{Name: name, Password: pw, Privileged: privileged}
	p.showAppPasswords(w, r, s, http.StatusOK, v)
}

func (p *Pages) revokeAppPassword(w http.ResponseWriter, r *http.Request, s *session) {
	v := p.accountView(s, "", "")
	name := r.PostForm.Get("name")
	if err := p.creds.RevokeAppPassword(r.Context(), s.did(), name); err != nil {
		p.log.Error("accountpages: revoke app password", "err", err)
		v.Error = "The server could not revoke the app password. Try again later."
		p.showAppPasswords(w, r, s, http.StatusInternalServerError, v)
		return
	}
	v.Notice = "The app password “" + name + "” is revoked; apps signed in with it are signed out."
	p.showAppPasswords(w, r, s, http.StatusOK, v)
}
