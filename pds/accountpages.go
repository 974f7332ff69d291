package pds

import (
	"github.com/pdsgo/pds/pds/accountpages"
	"github.com/pdsgo/pds/pds/oauth"
)

// The account pages at /account, which share the OAuth provider's browser sign-in.

// pageLinks are describeServer's links, shown at the bottom of every page.
func (c *Config) pageLinks() []oauth.PageLink {
	var out []oauth.PageLink
	if c.PrivacyPolicyURL != "" {
		out = append(out, oauth.PageLink{Text: "Privacy policy", URL: c.PrivacyPolicyURL})
	}
	if c.TermsOfServiceURL != "" {
		out = append(out, oauth.PageLink{Text: "Terms of service", URL: c.TermsOfServiceURL})
	}
	if c.ContactEmailAddress != "" {
		out = append(out, oauth.PageLink{Text: "Contact", URL: "mailto:" + c.ContactEmailAddress})
	}
	return out
}

// newAccountPages builds the account pages on the OAuth provider's browser sign-in.
func (s *Server) newAccountPages() error {
	var err error
	s.accountPages, err = accountpages.New(accountpages.Deps{Kit: s.oauth, Credentials: s.auth, Accounts: s.accounts, Logger: s.log})
	return err
}
