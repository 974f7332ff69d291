package accounts

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// Email subjects, as the reference's mail templates.
var tokenSubject = map[accountstore.TokenPurpose]string{
	accountstore.PurposeConfirmEmail:  "Email Confirmation",
	accountstore.PurposeUpdateEmail:   "Email Update Requested",
	accountstore.PurposeResetPassword: "Password Reset Requested",
	accountstore.PurposeDeleteAccount: "Account Deletion Requested",
	accountstore.PurposePLCOperation:  "PLC Update Operation Requested",
	accountstore.PurposeSignIn:        "Sign-in Code",
}

var tokenPurposeText = map[accountstore.TokenPurpose]string{
	accountstore.PurposeConfirmEmail:  "confirm your email address",
	accountstore.PurposeUpdateEmail:   "change the email address of your account",
	accountstore.PurposeResetPassword: "reset your password",
	accountstore.PurposeDeleteAccount: "delete your account",
	accountstore.PurposePLCOperation:  "sign an update of your account's identity (PLC operation)",
	accountstore.PurposeSignIn:        "sign in to your account",
}

// SendEmailToken creates a token for acct and purpose (replacing an earlier one) and mails it to the account's
// address. A failed send is an error for the caller: the user would otherwise wait for a token that never comes.
func (s *Service) SendEmailToken(ctx context.Context, acct *accountstore.Account, purpose accountstore.TokenPurpose) error {
	subject := tokenSubject[purpose]
	if acct.Email == "" {
		return xrpc.InvalidRequest("account does not have an email address")
	}
	token, err := s.CreateEmailToken(ctx, acct.DID, purpose)
	if err != nil {
		return err
	}
	what := tokenPurposeText[purpose]
	if what == "" {
		what = string(purpose)
	}
	manage := s.cfg.PublicURL + "/account"
	text := fmt.Sprintf("Hello %s,\n\nUse this code to %s on %s:\n\n    %s\n\n"+
		"The code is valid for %d minutes and can be used once. If you did not ask for it, ignore this email.\n\n"+
		"Manage your account: %s\n",
		acct.Handle, what, s.cfg.Hostname, token, int(accountstore.EmailTokenTTL/time.Minute), manage)
	htmlBody := fmt.Sprintf("<p>Hello %s,</p><p>Use this code to %s on %s:</p><p><strong style=\"font-family:monospace;font-size:1.4em\">%s</strong></p>"+
		"<p>The code is valid for %d minutes and can be used once. If you did not ask for it, ignore this email.</p>"+
		"<p><a href=\"%s\">Manage your account</a></p>",
		html.EscapeString(acct.Handle), html.EscapeString(what), html.EscapeString(s.cfg.Hostname), token,
		int(accountstore.EmailTokenTTL/time.Minute), html.EscapeString(manage))
	return s.SendMail(ctx, acct.Email, subject, text, htmlBody)
}

// SendMail sends one message and turns a failure into a 502 for the client (the details go to the log).
func (s *Service) SendMail(ctx context.Context, to, subject, text, htmlBody string) error {
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.d.Mailer.Send(sendCtx, to, subject, text, htmlBody); err != nil {
		s.log.Error("sending email failed", "subject", subject, "err", err)
		return xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "Could not send email")
	}
	return nil
}

// ValidEmail is the createAccount check: one plain address with a dot in it.
func ValidEmail(email string) bool {
	addr, err := mail.ParseAddress(email)
	return err == nil && addr.Address == email && strings.Contains(email, ".") && len(email) <= 254
}
