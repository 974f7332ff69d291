package accountpages

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// userMessage is the text to show for an error of the account service: an XRPC error's message (written for
// people), or a generic one (the details go to the log).
func (p *Pages) userMessage(err error, what string) string {
	var xe *xrpc.Error
	if errors.As(err, &xe) && xe.Status < 500 {
		switch xe.Name {
		case xrpc.NameInvalidToken:
			return "That code is not right. Check the email and try again."
		case xrpc.NameExpiredToken:
			return "That code has expired. Ask for a new one."
		}
		return xe.Message
	}
	p.log.Error("accountpages: "+what, "err", err)
	return "The server could not " + what + ". Try again later."
}

func errStatus(err error) int {
	var xe *xrpc.Error
	if errors.As(err, &xe) {
		return xe.Status
	}
	return http.StatusInternalServerError
}

func (p *Pages) passwordPage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Password", "password"
	return "account-password", nil
}

// changePassword checks the current password (rate limited per account), sets the new one, and ends every
// other session: createSession sessions (with the password), OAuth sessions and other browsers' sign-ins. This
// browser stays signed in.
func (p *Pages) changePassword(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v := p.accountView(s, "", "")
	p.passwordPage(ctx, s, v)
	current, next := r.PostForm.Get("current"), r.PostForm.Get("new")
	switch {
	case next != r.PostForm.Get("confirm"):
		v.Error = "The new password and its confirmation differ."
	case len(next) < 8 || len(next) > accounts.MaxPasswordLength:
		v.Error = "Choose a new password of 8 to 256 characters."
	case !p.kit.AllowAccount(s.did(), "password", 10, 5*time.Minute):
		v.Error = "Too many attempts. Wait a few minutes and try again."
	}
	if v.Error != "" {
		p.render(w, http.StatusBadRequest, "account-password", v)
		return
	}
	err := p.accounts.ChangePassword(ctx, s.did(), current, next)
	if errors.Is(err, accounts.ErrWrongPassword) {
		v.Error = "Your current password is not right."
		p.render(w, http.StatusUnauthorized, "account-password", v)
		return
	}
	if err != nil {
		v.Error = p.userMessage(err, "change your password")
		p.render(w, errStatus(err), "account-password", v)
		return
	}
	if err := p.kit.RevokeAccount(ctx, s.did()); err != nil {
		p.log.Error("accountpages: end OAuth sessions after a password change", "err", err)
	}
	// Sign this browser in again with the new password (RevokeAccount signed it out with the others).
	if _, err := p.kit.SignIn(ctx, r, s.device, s.did().String(), next); err != nil {
		p.log.Error("accountpages: sign in again after a password change", "err", err)
		v := p.view("Password changed")
		v.Notice = "Your password is changed and every session has ended. Sign in with your new password."
		p.render(w, http.StatusOK, "account-signedout", v)
		return
	}
	v.Notice = "Your password is changed. Every other session has ended: apps and other browsers must sign in again."
	p.render(w, http.StatusOK, "account-password", v)
}

// The password reset, for a browser that is not signed in: an email address, then the mailed code and a new
// password. Its forms carry a CSRF token of this browser.

func (p *Pages) resetView(w http.ResponseWriter, r *http.Request, step string) *view {
	device := p.kit.Device(w, r, true)
	v := p.view("Reset your password")
	v.CSRF = p.kit.CSRFToken(device, "reset")
	v.Step = step
	return v
}

func (p *Pages) handleResetPage(w http.ResponseWriter, r *http.Request) {
	step := "email"
	if r.URL.Query().Get("step") == "code" {
		step = "code"
	}
	p.render(w, http.StatusOK, "account-reset", p.resetView(w, r, step))
}

func (p *Pages) resetForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.renderError(w, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	device := p.kit.Device(w, r, false)
	if !p.kit.SameOrigin(r) || device == "" ||
		!hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(p.kit.CSRFToken(device, "reset"))) {
		p.renderError(w, http.StatusForbidden, "This form has expired or was not sent by this page. Reload the page and try again.")
		return false
	}
	return true
}

// handleResetRequest mails a code; whether an account uses the address is not said (the page reads the same).
func (p *Pages) handleResetRequest(w http.ResponseWriter, r *http.Request) {
	if !p.resetForm(w, r) {
		return
	}
	v := p.resetView(w, r, "code")
	email := strings.TrimSpace(r.PostForm.Get("email"))
	if !p.kit.Allow(r, "reset-request", 15, time.Hour) { // the reference's requestPasswordReset: 15 per hour
		v.Step, v.Error = "email", "Too many requests. Wait a while and try again."
		p.render(w, http.StatusTooManyRequests, "account-reset", v)
		return
	}
	if err := p.accounts.RequestPasswordReset(r.Context(), email); err != nil && !errors.Is(err, accountstore.ErrNotFound) {
		v.Step, v.Error = "email", p.userMessage(err, "send the code")
		p.render(w, errStatus(err), "account-reset", v)
		return
	}
	v.Notice = "If an account uses " + email + ", a code is on its way there. It is valid for 15 minutes."
	p.render(w, http.StatusOK, "account-reset", v)
}

func (p *Pages) handleReset(w http.ResponseWriter, r *http.Request) {
	if !p.resetForm(w, r) {
		return
	}
	v := p.resetView(w, r, "code")
	next := r.PostForm.Get("new")
	switch {
	case next != r.PostForm.Get("confirm"):
		v.Error = "The new password and its confirmation differ."
	case len(next) < 8 || len(next) > accounts.MaxPasswordLength:
		v.Error = "Choose a new password of 8 to 256 characters."
	case !p.kit.Allow(r, "reset", 50, 5*time.Minute): // the reference's resetPassword: 50 per 5 minutes
		v.Error = "Too many attempts. Wait a few minutes and try again."
	}
	if v.Error != "" {
		p.render(w, http.StatusBadRequest, "account-reset", v)
		return
	}
	did, err := p.accounts.ResetPassword(r.Context(), r.PostForm.Get("code"), next)
	if err != nil {
		v.Error = p.userMessage(err, "reset your password")
		p.render(w, errStatus(err), "account-reset", v)
		return
	}
	if err := p.kit.RevokeAccount(r.Context(), did); err != nil {
		p.log.Error("accountpages: end OAuth sessions after a reset", "err", err)
	}
	v = p.view("Password changed")
	v.Notice = "Your password is changed and every session has ended. Sign in with your new password."
	p.render(w, http.StatusOK, "account-signedout", v)
}

func (p *Pages) emailPage(ctx context.Context, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Email", "email"
	acct, err := p.accounts.ByDID(ctx, s.did())
	if err != nil {
		return "", err
	}
	v.Email, v.EmailConfirmed, v.TwoFactor = acct.Email, acct.EmailConfirmedAt != nil, acct.EmailAuthFactor
	return "account-email", nil
}

// emailAction: step "send-confirm" mails a confirmation code, "confirm" uses it, "start-change" begins a change
// (a code to the current address when it is confirmed), "change" sets the new address.
func (p *Pages) emailAction(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v := p.accountView(s, "", "")
	status := http.StatusOK
	var err error
	mailing := func() bool {
		if p.kit.AllowAccount(s.did(), "email", 15, time.Hour) {
			return true
		}
		v.Error, status = "Too many codes asked for. Wait a while and try again.", http.StatusTooManyRequests
		return false
	}
	switch r.PostForm.Get("step") {
	case "send-confirm":
		if mailing() {
			if err = p.accounts.RequestEmailConfirmation(ctx, s.did()); err == nil {
				v.Step, v.Notice = "confirm", "A confirmation code is on its way to your address."
			}
		}
	case "confirm":
		if err = p.accounts.ConfirmEmail(ctx, s.did(), r.PostForm.Get("code")); err == nil {
			v.Notice = "Your email address is confirmed."
		} else {
			v.Step = "confirm"
		}
	case "start-change":
		if mailing() {
			var tokenRequired bool
			if tokenRequired, err = p.accounts.RequestEmailUpdate(ctx, s.did()); err == nil {
				v.Step = "change"
				if tokenRequired {
					v.Step, v.Notice = "change-code", "A code is on its way to your current address: enter it with the new address."
				}
			}
		}
	case "change":
		if err = p.accounts.ChangeEmail(ctx, s.did(), r.PostForm.Get("email"), r.PostForm.Get("code")); err == nil {
			v.Notice = "Your email address is changed. Confirm the new address to use it for sign-in codes and resets."
		} else {
			v.Step = "change"
			if r.PostForm.Get("code") != "" {
				v.Step = "change-code"
			}
		}
	case "two-factor":
		on := r.PostForm.Get("on") == "true"
		if err = p.accounts.SetTwoFactor(ctx, s.did(), on); err == nil {
			v.Notice = "Sign-in codes by email are off."
			if on {
				v.Notice = "Sign-in codes by email are on: signing in with your password now also needs a code sent to your address."
			}
		}
	default:
		v.Error, status = "Choose an action.", http.StatusBadRequest
	}
	if err != nil {
		v.Error, status = p.userMessage(err, "update your email"), errStatus(err)
	}
	if _, err := p.emailPage(ctx, s, v); err != nil {
		p.renderError(w, http.StatusInternalServerError, p.userMessage(err, "load your account"))
		return
	}
	p.render(w, status, "account-email", v)
}
