// Package accountpages serves the account's own pages at /account: sign-in with the account password
// (remembered per browser, as on the OAuth pages), the sessions and apps that can act for the account, app
// passwords, and the account's settings.
//
// It shares everything a browser sees with pds/oauth (the device cookie and the accounts signed in on it, the
// sign-in and its rate limits, the layout, stylesheet and CSP, CSRF tokens) through the Kit interface, and
// reaches the account through narrow interfaces the server fills with pds/auth and pds/accounts. It holds no
// state and no SQL of its own, and it never acts for an account that is not signed in on the requesting browser.
package accountpages
