package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/oauth/dpop"
)

// OAuth error codes (RFC 6749 5.2, RFC 9449, RFC 9126, RFC 6750).
const (
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidClient           = "invalid_client"
	CodeInvalidGrant            = "invalid_grant"
	CodeUnauthorizedClient      = "unauthorized_client"
	CodeUnsupportedGrantType    = "unsupported_grant_type"
	CodeUnsupportedResponseType = "unsupported_response_type"
	CodeInvalidScope            = "invalid_scope"
	CodeAccessDenied            = "access_denied"
	CodeConsentRequired         = "consent_required"
	CodeLoginRequired           = "login_required"
	CodeInvalidDPoPProof        = "invalid_dpop_proof"
	CodeUseDPoPNonce            = "use_dpop_nonce"
	CodeInvalidToken            = "invalid_token"
	CodeRequestNotSupported     = "request_not_supported"
	CodeServerError             = "server_error"
)

// Error is an OAuth error: its JSON body is {"error","error_description"}. On the resource side (VerifyAccess)
// WWWAuthenticate and DPoPNonce are what the XRPC layer must send with the 401.
type Error struct {
	Status          int
	Code            string
	Description     string
	WWWAuthenticate string // resource errors: `DPoP error="...", error_description="..."`
	DPoPNonce       string // set when the client must retry with this nonce
	err             error
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }
func (e *Error) Unwrap() error { return e.err }

// SetHeaders adds the error's WWW-Authenticate and DPoP-Nonce headers to h.
func (e *Error) SetHeaders(h http.Header) {
	if e.WWWAuthenticate != "" {
		h.Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.DPoPNonce != "" {
		h.Set("DPoP-Nonce", e.DPoPNonce)
	}
}

func oauthErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// asError maps every error of the package's collaborators to an OAuth error, in one place: store sentinels,
// DPoP verification, and anything else (a 500 that reveals nothing).
func (p *Provider) asError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, accountstore.ErrOAuthReplay):
		// The store already revoked the session the replayed grant had started; drop cached liveness.
		p.liveCache.clear()
		return &Error{Status: 400, Code: CodeInvalidGrant, Description: "This grant was already used; its session is revoked", err: err}
	case errors.Is(err, accountstore.ErrOAuthRequestUsed):
		return &Error{Status: 400, Code: CodeAccessDenied, Description: "This request was already used or started in another browser", err: err}
	case errors.Is(err, accountstore.ErrNotFound):
		return &Error{Status: 400, Code: CodeInvalidGrant, Description: "Unknown or expired grant", err: err}
	case errors.Is(err, dpop.ErrUseNonce):
		return &Error{Status: 400, Code: CodeUseDPoPNonce, Description: "Authorization server requires nonce in DPoP proof",
			DPoPNonce: p.nonces.Current(), err: err}
	case errors.Is(err, dpop.ErrMissing):
		return &Error{Status: 400, Code: CodeInvalidDPoPProof, Description: "DPoP proof required", err: err}
	case errors.Is(err, dpop.ErrReplay):
		return &Error{Status: 400, Code: CodeInvalidDPoPProof, Description: "DPoP proof replayed", err: err}
	case errors.Is(err, dpop.ErrInvalid):
		return &Error{Status: 400, Code: CodeInvalidDPoPProof, Description: err.Error(), err: err}
	}
	p.log.Error("oauth: internal error", "err", err)
	return &Error{Status: 500, Code: CodeServerError, Description: "Internal server error", err: err}
}

// writeError answers an endpoint request with an OAuth JSON error.
func (p *Provider) writeError(w http.ResponseWriter, err error) {
	e := p.asError(err)
	e.SetHeaders(w.Header())
	writeJSON(w, e.Status, map[string]string{"error": e.Code, "error_description": e.Description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
