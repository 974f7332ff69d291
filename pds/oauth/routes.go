package oauth

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Route is one HTTP route of the provider.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Paths of the provider's routes.
const (
	PathProtectedResource = "/.well-known/oauth-protected-resource"
	PathAuthServer        = "/.well-known/oauth-authorization-server"
	PathJWKS              = "/oauth/jwks"
	PathPAR               = "/oauth/par"
	PathAuthorize         = "/oauth/authorize"
	PathSignIn            = "/oauth/authorize/sign-in"
	PathConsent           = "/oauth/authorize/consent"
	PathToken             = "/oauth/token"
	PathRevoke            = "/oauth/revoke"
)

// Routes lists every route (including the CORS preflights) for the server's route table.
func (p *Provider) Routes() []Route {
	rs := []Route{
		{http.MethodGet, PathProtectedResource, p.cors(p.handleProtectedResource)},
		{http.MethodGet, PathAuthServer, p.cors(p.handleAuthServerMetadata)},
		{http.MethodGet, PathJWKS, p.cors(p.handleJWKS)},
		{http.MethodPost, PathPAR, p.cors(p.handlePAR)},
		{http.MethodGet, PathAuthorize, p.handleAuthorize},
		{http.MethodPost, PathSignIn, p.handleSignIn},
		{http.MethodPost, PathConsent, p.handleConsent},
		{http.MethodPost, PathToken, p.cors(p.handleToken)},
		{http.MethodPost, PathRevoke, p.cors(p.handleRevoke)},
	}
	for _, path := range []string{PathProtectedResource, PathAuthServer, PathJWKS, PathPAR, PathToken, PathRevoke} {
		rs = append(rs, Route{http.MethodOptions, path, p.cors(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})})
	}
	return rs
}

// Register adds the routes to an echo router.
func (p *Provider) Register(e *echo.Echo) {
	for _, r := range p.Routes() {
		e.Add(r.Method, r.Path, echo.WrapHandler(r.Handler))
	}
}

// cors opens an endpoint to browser apps on any origin (they authenticate with DPoP and client assertions, never
// cookies), as the reference does for its metadata, PAR, token and revocation endpoints.
func (p *Provider) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		hd.Set("Access-Control-Allow-Headers", "Content-Type, DPoP, Authorization")
		hd.Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
		hd.Set("Access-Control-Max-Age", "86400")
		h(w, r)
	}
}

// AuthServerMetadata is the RFC 8414 document (fields as @atproto/oauth-types and indigo's AuthServerMetadata).
type AuthServerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	ScopesSupported                            []string `json:"scopes_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	UILocalesSupported                         []string `json:"ui_locales_supported"`
	DisplayValuesSupported                     []string `json:"display_values_supported"`
	PromptValuesSupported                      []string `json:"prompt_values_supported"`
	RequestParameterSupported                  bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported               bool     `json:"request_uri_parameter_supported"`
	RequireRequestURIRegistration              bool     `json:"require_request_uri_registration"`
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	RequirePushedAuthorizationRequests         bool     `json:"require_pushed_authorization_requests"`
	PushedAuthorizationRequestEndpoint         string   `json:"pushed_authorization_request_endpoint"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	DPoPSigningAlgValuesSupported              []string `json:"dpop_signing_alg_values_supported"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported"`
	ProtectedResources                         []string `json:"protected_resources"`
}

// Algorithms we verify for DPoP proofs and client assertions (the dpop package's set; ES256 is the one atproto
// requires every party to support).
var signingAlgs = []string{"ES256", "ES256K"}

// Metadata returns the authorization server metadata.
func (p *Provider) Metadata() AuthServerMetadata {
	iss := p.cfg.Issuer
	return AuthServerMetadata{
		Issuer:                                     iss,
		ScopesSupported:                            []string{"atproto", "transition:email", "transition:generic", "transition:chat.bsky"},
		SubjectTypesSupported:                      []string{"public"},
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query", "fragment"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		UILocalesSupported:                         []string{"en-US"},
		DisplayValuesSupported:                     []string{"page", "touch"},
		PromptValuesSupported:                      []string{"none", "login", "consent", "select_account"},
		RequestURIParameterSupported:               true,
		RequireRequestURIRegistration:              true,
		AuthorizationResponseISSParameterSupported: true,
		RequirePushedAuthorizationRequests:         true,
		PushedAuthorizationRequestEndpoint:         iss + PathPAR,
		AuthorizationEndpoint:                      iss + PathAuthorize,
		TokenEndpoint:                              iss + PathToken,
		TokenEndpointAuthMethodsSupported:          []string{"none", "private_key_jwt"},
		TokenEndpointAuthSigningAlgValuesSupported: signingAlgs,
		RevocationEndpoint:                         iss + PathRevoke,
		JWKSURI:                                    iss + PathJWKS,
		DPoPSigningAlgValuesSupported:              signingAlgs,
		ClientIDMetadataDocumentSupported:          true,
		ProtectedResources:                         []string{iss},
	}
}

func writeCachedJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300") // as the reference: clients may cache metadata 5 min
	json.NewEncoder(w).Encode(v)
}

func (p *Provider) handleAuthServerMetadata(w http.ResponseWriter, r *http.Request) {
	writeCachedJSON(w, p.Metadata())
}

// handleProtectedResource: RFC 9728 metadata of this PDS as a resource server.
func (p *Provider) handleProtectedResource(w http.ResponseWriter, r *http.Request) {
	writeCachedJSON(w, map[string]any{
		"resource":                 p.cfg.Issuer,
		"authorization_servers":    []string{p.cfg.Issuer},
		"scopes_supported":         []string{},
		"bearer_methods_supported": []string{"header"},
		"resource_documentation":   "https://atproto.com",
	})
}

// handleJWKS: access tokens are HS256 (verified only by this server), so there is no public key to publish; the
// endpoint exists because clients read jwks_uri from the metadata (the reference serves an empty set too).
func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	writeCachedJSON(w, map[string]any{"keys": []any{}})
}
