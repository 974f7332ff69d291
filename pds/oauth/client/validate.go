package client

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/auth/oauth"
)

// extraMetadata holds the members indigo's ClientMetadata does not decode but validation looks at.
type extraMetadata struct {
	JWKS        json.RawMessage `json:"jwks"`
	SubjectType *string         `json:"subject_type"`
	// OpenID Connect parameters this server does not support (the reference refuses them).
	DefaultMaxAge                     any   `json:"default_max_age"`
	UserinfoSignedResponseAlg         any   `json:"userinfo_signed_response_alg"`
	IDTokenSignedResponseAlg          any   `json:"id_token_signed_response_alg"`
	UserinfoEncryptedResponseAlg      any   `json:"userinfo_encrypted_response_alg"`
	AuthorizationEncryptedResponseEnc any   `json:"authorization_encrypted_response_enc"`
	TLSClientCertBoundAccessTokens    *bool `json:"tls_client_certificate_bound_access_tokens"`
}

func invalidMD(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidClientMetadata}, args...)...)
}

// validateMetadata applies the atproto OAuth spec's client rules, with the reference's stricter readings
// (packages/oauth/oauth-provider client-manager). extra is nil for loopback clients (their metadata is built
// here).
func validateMetadata(clientID string, md *oauth.ClientMetadata, extra *extraMetadata, loopback bool) error {
	if md.ClientID != clientID {
		return invalidMD("client_id %q does not match the URL it was fetched from", md.ClientID)
	}
	hasJWKS := extra != nil && len(extra.JWKS) > 0 && string(extra.JWKS) != "null"
	if hasJWKS && md.JWKSURI != nil {
		return invalidMD("jwks and jwks_uri are mutually exclusive")
	}
	if extra != nil {
		for name, v := range map[string]any{
			"default_max_age":                      extra.DefaultMaxAge,
			"userinfo_signed_response_alg":         extra.UserinfoSignedResponseAlg,
			"id_token_signed_response_alg":         extra.IDTokenSignedResponseAlg,
			"userinfo_encrypted_response_alg":      extra.UserinfoEncryptedResponseAlg,
			"authorization_encrypted_response_enc": extra.AuthorizationEncryptedResponseEnc,
		} {
			if v != nil {
				return invalidMD("unsupported %s parameter", name)
			}
		}
		if extra.TLSClientCertBoundAccessTokens != nil && *extra.TLSClientCertBoundAccessTokens {
			return invalidMD("mutual-TLS bound access tokens are not supported")
		}
		if extra.SubjectType != nil && *extra.SubjectType != "public" {
			return invalidMD(`only the "public" subject_type is supported`)
		}
	}

	// scope
	if md.Scope == "" || !ValidScopeSyntax(md.Scope) {
		return invalidMD("scope missing or malformed")
	}
	scopes := strings.Split(md.Scope, " ")
	if !slices.Contains(scopes, "atproto") {
		return invalidMD(`scope must include "atproto"`)
	}
	if d := duplicate(scopes); d != "" {
		return invalidMD("duplicate scope %q", d)
	}

	// grant and response types
	if d := duplicate(md.GrantTypes); d != "" {
		return invalidMD("duplicate grant type %q", d)
	}
	for _, g := range md.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return invalidMD("grant type %q is not supported", g)
		}
	}
	if !slices.Contains(md.GrantTypes, "authorization_code") {
		return invalidMD(`grant_types must include "authorization_code"`)
	}
	if len(md.ResponseTypes) == 0 {
		return invalidMD(`response_types must include "code"`)
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return invalidMD("unsupported response type %q", rt)
		}
	}
	if !md.DPoPBoundAccessTokens {
		return invalidMD("dpop_bound_access_tokens must be true")
	}

	// client authentication
	alg := ""
	if md.TokenEndpointAuthSigningAlg != nil {
		alg = *md.TokenEndpointAuthSigningAlg
	}
	switch md.TokenEndpointAuthMethod {
	case "":
		return invalidMD("token_endpoint_auth_method missing")
	case AuthNone:
		if md.TokenEndpointAuthSigningAlg != nil {
			return invalidMD(`token_endpoint_auth_method "none" must not have token_endpoint_auth_signing_alg`)
		}
	case AuthPrivateKeyJWT:
		if !hasJWKS && md.JWKSURI == nil {
			return invalidMD("private_key_jwt requires jwks or jwks_uri")
		}
		if alg != "ES256" {
			return invalidMD(`private_key_jwt requires token_endpoint_auth_signing_alg "ES256"`)
		}
	default:
		return invalidMD(`token_endpoint_auth_method %q is not supported (use "none" or "private_key_jwt")`, md.TokenEndpointAuthMethod)
	}

	// application type and redirect URIs
	appType := "web"
	if md.ApplicationType != nil {
		appType = *md.ApplicationType
	}
	if appType != "web" && appType != "native" {
		return invalidMD(`application_type must be "web" or "native"`)
	}
	if len(md.RedirectURIs) == 0 {
		return invalidMD("at least one redirect_uri is required")
	}
	var idURL *url.URL
	if !loopback {
		var err error
		if idURL, err = url.Parse(clientID); err != nil {
			return invalidMD("client_id: %v", err)
		}
	}
	for _, ru := range md.RedirectURIs {
		if err := checkRedirectURI(ru, appType, idURL); err != nil {
			return invalidMD("redirect_uri %q: %v", ru, err)
		}
	}

	// presentation URLs
	for name, p := range map[string]*string{"logo_uri": md.LogoURI, "tos_uri": md.TosURI, "policy_uri": md.PolicyURI} {
		if p != nil {
			if u, err := url.Parse(*p); err != nil || u.Scheme != "https" || u.Host == "" {
				return invalidMD("%s must be an https URL", name)
			}
		}
	}

	if loopback {
		if md.ClientURI != nil {
			return invalidMD("client_uri is not allowed for loopback clients")
		}
		if appType != "native" || md.TokenEndpointAuthMethod != AuthNone {
			return invalidMD(`loopback clients are native public clients`)
		}
		for _, ru := range md.RedirectURIs {
			if err := checkLoopbackRedirect(ru); err != nil {
				return invalidMD("loopback redirect_uri %q: %v", ru, err)
			}
		}
		return nil
	}

	// Discoverable clients: client_uri is a same-origin parent of the client_id URL.
	if md.ClientURI != nil {
		cu, err := url.Parse(*md.ClientURI)
		if err != nil || cu.Scheme != idURL.Scheme || !strings.EqualFold(cu.Host, idURL.Host) {
			return invalidMD("client_uri must have the same origin as the client_id")
		}
		cp, ip := pathOrSlash(cu), pathOrSlash(idURL)
		if cp != ip && !strings.HasPrefix(ip, strings.TrimSuffix(cp, "/")+"/") {
			return invalidMD("client_uri must be a parent URL of the client_id")
		}
	}
	return nil
}

// checkRedirectURI: loopback IPs over http for native apps; https on a public-suffix domain (the client_id's
// host, for discoverable clients); private-use schemes "reverse.domain:/path" for native apps (the reverse of
// the client_id's host, for discoverable clients). Everything else, and "localhost", is refused.
func checkRedirectURI(raw, appType string, idURL *url.URL) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials")
	}
	host := u.Hostname()
	switch {
	case host == "localhost" && (u.Scheme == "http" || u.Scheme == "https"):
		return fmt.Errorf("use 127.0.0.1 or [::1] instead of localhost (RFC 8252)")
	case isLoopbackIP(host) && (u.Scheme == "http" || u.Scheme == "https"):
		if appType != "native" {
			return fmt.Errorf("loopback redirect URIs are only allowed for native apps")
		}
		if u.Scheme != "http" {
			return fmt.Errorf("loopback redirect URIs must use http")
		}
	case u.Scheme == "http":
		return fmt.Errorf(`only loopback redirect URIs may use "http"`)
	case u.Scheme == "https":
		if !isInternetHost(host) {
			return fmt.Errorf("host must be a domain under a public suffix")
		}
		if idURL != nil && !strings.EqualFold(host, idURL.Hostname()) {
			return fmt.Errorf("must be on the client_id's host %s", idURL.Hostname())
		}
	case strings.Contains(u.Scheme, "."):
		if appType != "native" {
			return fmt.Errorf("private-use URI schemes are only allowed for native apps")
		}
		if !isInternetHost(reverseDomain(u.Scheme)) {
			return fmt.Errorf("private-use scheme must be a reversed domain name")
		}
		if u.Opaque != "" || u.Host != "" || strings.HasPrefix(raw, u.Scheme+"://") || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("private-use redirect URIs must look like %s:/path", u.Scheme)
		}
		if idURL != nil && u.Scheme != reverseDomain(strings.ToLower(idURL.Hostname())) {
			return fmt.Errorf("private-use scheme must be the client_id host reversed (%s)", reverseDomain(idURL.Hostname()))
		}
	default:
		return fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	return nil
}

func reverseDomain(d string) string {
	parts := strings.Split(d, ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".")
}

func duplicate(list []string) string {
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}
