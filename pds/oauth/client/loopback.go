package client

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/bluesky-social/indigo/atproto/auth/oauth"
)

// LoopbackOrigin starts every loopback (development) client_id.
const LoopbackOrigin = "http://localhost"

// Defaults of a loopback client, as @atproto/oauth-types builds them.
const (
	DefaultLoopbackScope = "atproto"
	LoopbackClientName   = "Loopback client"
)

// DefaultLoopbackRedirectURIs are a loopback client's redirect URIs when its client_id names none (read-only:
// copied on use).
var DefaultLoopbackRedirectURIs = []string{"http://127.0.0.1/", "http://[::1]/"}

// scopeSyntax is RFC 6749 §3.3: space-separated tokens of printable ASCII except space, " and \.
var scopeSyntax = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*$`)

// ValidScopeSyntax reports whether s is a well-formed OAuth scope string.
func ValidScopeSyntax(s string) bool { return scopeSyntax.MatchString(s) }

// IsLoopbackClientID reports whether clientID is meant as a loopback client id (it may still be invalid).
func IsLoopbackClientID(clientID string) bool {
	rest, ok := strings.CutPrefix(clientID, LoopbackOrigin)
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '?' || rest[0] == '#')
}

// loopbackMetadata builds the virtual metadata document of a loopback client_id: exactly "http://localhost",
// optionally "/", optionally a query with one scope and any number of redirect_uri parameters, nothing else.
func loopbackMetadata(clientID string) (*oauth.ClientMetadata, error) {
	rest := strings.TrimPrefix(clientID, LoopbackOrigin)
	if strings.Contains(rest, "#") {
		return nil, fmt.Errorf("%w: loopback client_id must not have a fragment", ErrInvalidClientID)
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest != "" && rest[0] != '?' {
		return nil, fmt.Errorf("%w: loopback client_id must not have a port or path", ErrInvalidClientID)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(rest, "?"))
	if err != nil {
		return nil, fmt.Errorf("%w: loopback client_id query: %v", ErrInvalidClientID, err)
	}
	scope := DefaultLoopbackScope
	var redirects []string
	for k, vs := range q {
		switch k {
		case "scope":
			if len(vs) != 1 {
				return nil, fmt.Errorf("%w: duplicate scope parameter", ErrInvalidClientID)
			}
			if !ValidScopeSyntax(vs[0]) {
				return nil, fmt.Errorf("%w: invalid scope parameter", ErrInvalidClientID)
			}
			scope = vs[0]
		case "redirect_uri":
			for _, v := range vs {
				if err := checkLoopbackRedirect(v); err != nil {
					return nil, fmt.Errorf("%w: redirect_uri %q: %v", ErrInvalidClientID, v, err)
				}
			}
			redirects = vs
		default:
			return nil, fmt.Errorf("%w: unexpected query parameter %q", ErrInvalidClientID, k)
		}
	}
	if !hasToken(scope, "atproto") {
		return nil, fmt.Errorf("%w: loopback client scope must include atproto", ErrInvalidClientID)
	}
	if redirects == nil {
		redirects = append([]string(nil), DefaultLoopbackRedirectURIs...)
	}
	native, name := "native", LoopbackClientName
	return &oauth.ClientMetadata{
		ClientID:                clientID,
		ApplicationType:         &native,
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		Scope:                   scope,
		ResponseTypes:           []string{"code"},
		RedirectURIs:            redirects,
		TokenEndpointAuthMethod: AuthNone,
		DPoPBoundAccessTokens:   true,
		ClientName:              &name,
	}, nil
}

// checkLoopbackRedirect: http on 127.0.0.1 or [::1] (RFC 8252 §7.3; "localhost" is refused, §8.3).
func checkLoopbackRedirect(raw string) error {
	if !strings.HasPrefix(raw, "http://") {
		return fmt.Errorf("must use http")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Hostname() == "localhost":
		return fmt.Errorf("use 127.0.0.1 or [::1], not localhost (RFC 8252)")
	case !isLoopbackIP(u.Hostname()):
		return fmt.Errorf("host must be 127.0.0.1 or [::1]")
	case u.User != nil:
		return fmt.Errorf("must not contain credentials")
	}
	return nil
}

func isLoopbackIP(host string) bool { return host == "127.0.0.1" || host == "::1" }

func isLoopbackHost(host string) bool { return host == "localhost" || isLoopbackIP(host) }

func hasToken(s, tok string) bool {
	for _, t := range strings.Split(s, " ") {
		if t == tok {
			return true
		}
	}
	return false
}
