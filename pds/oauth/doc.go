// Package oauth is the server's OAuth 2.1 authorization server for atproto apps (atproto.com/specs/oauth), the
// counterpart of the reference PDS's @atproto/oauth-provider: discovery metadata, pushed authorization requests,
// the sign-in, account-chooser and consent pages a person uses in a browser, the token and revocation endpoints,
// and, for the XRPC layer, verification of DPoP-bound access tokens (VerifyAccess).
//
// It owns the OAuth tables of account.sqlite through pds/accountstore (its SQL lives there) and the HTML of its
// pages (templates/, embedded). It does not know how passwords are hashed or what an account's status means:
// that comes through the Accounts interface the server implements. It never writes the account table, and it
// does not enforce scopes on XRPC methods (the auth seam does, from Access.Scope).
//
// pagekit.go exports what the server's other pages (pds/accountpages) share with these: the browser's device
// cookie and the accounts signed in on it, the sign-in (with its rate limits and the emailed second factor), the
// layout, stylesheet and CSP, and CSRF tokens.
//
// DPoP proofs, client metadata and scope strings are checked by its sub-packages dpop, client and scope.
package oauth
