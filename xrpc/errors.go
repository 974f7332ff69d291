package xrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error is the one error type handlers return for anything the client should
// see. ErrorHandler turns it into `{"error": Name, "message": Message}` with
// HTTP status Status. Any other error becomes an opaque 500.
type Error struct {
	Status  int
	Name    string
	Message string
	// Headers are added to the error response (e.g. RateLimit-*, WWW-Authenticate).
	Headers map[string]string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, e.Name)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Name, e.Message)
}

// WithHeader returns e after setting a response header on it (chainable).
func (e *Error) WithHeader(k, v string) *Error {
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	e.Headers[k] = v
	return e
}

// NewError builds an *Error; format/args follow fmt.Sprintf (no formatting
// when args is empty, so a literal '%' in format is safe).
func NewError(status int, name, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Status: status, Name: name, Message: msg}
}

// Error names. Statuses are those the reference PDS (@atproto/pds with
// @atproto/xrpc-server) puts on the wire for each name.
const (
	NameInvalidRequest          = "InvalidRequest"          // 400
	NameAuthMissing             = "AuthMissing"             // 401
	NameAuthenticationRequired  = "AuthenticationRequired"  // 401
	NameAuthFactorTokenRequired = "AuthFactorTokenRequired" // 401: createSession needs the mailed sign-in code
	NameExpiredToken            = "ExpiredToken"            // 400
	NameInvalidToken            = "InvalidToken"            // 400
	NameForbidden               = "Forbidden"               // 403
	NameScopeMissing            = "ScopeMissingError"       // 403: an OAuth grant lacks the permission (the reference's name)
	NameNotFound                = "NotFound"                // 404 for non-method paths; 400 from the admin reads (reference)
	NameMethodNotAllowed        = "MethodNotAllowed"        // 405 (non-XRPC paths only)
	NamePayloadTooLarge         = "PayloadTooLarge"         // 413
	NameUnsupportedMediaType    = "UnsupportedMediaType"    // 415
	NameRateLimitExceeded       = "RateLimitExceeded"       // 429
	NameInternalServerError     = "InternalServerError"     // 500
	NameMethodNotImplemented    = "MethodNotImplemented"    // 501
	NameUpstreamFailure         = "UpstreamFailure"         // 502
	NameNotEnoughResources      = "NotEnoughResources"      // 503
	NameUpstreamTimeout         = "UpstreamTimeout"         // 504
	NameRecordNotFound          = "RecordNotFound"          // 400
	NameRepoNotFound            = "RepoNotFound"            // 400
	NameInvalidSwap             = "InvalidSwap"             // 400
	NameAccountTakedown         = "AccountTakedown"         // 401 at auth; 400 elsewhere
	NameAccountDeactivated      = "AccountDeactivated"      // 401 at auth; 400 elsewhere
	NameRepoDeactivated         = "RepoDeactivated"         // 400
	NameRepoTakendown           = "RepoTakendown"           // 400
	NameRepoSuspended           = "RepoSuspended"           // 400
	NameHeadNotFound            = "HeadNotFound"            // 400 (deprecated sync.getHead)
	NameHandleNotAvailable      = "HandleNotAvailable"      // 400
	NameInvalidHandle           = "InvalidHandle"           // 400
	NameInvalidPassword         = "InvalidPassword"         // 400
	NameInvalidInviteCode       = "InvalidInviteCode"       // 400
	NameBlobNotFound            = "BlobNotFound"            // 400
	NameAccountNotFound         = "AccountNotFound"         // 400
	NameUnsupportedDomain       = "UnsupportedDomain"       // 400
	NameUnknownFeed             = "UnknownFeed"             // 400
	NameServiceUnavailable      = "ServiceUnavailable"      // 503
	NameInvalidMimeType         = "InvalidMimeType"         // 400
	NameInvalidSize             = "InvalidSize"             // 400
	NameHandleNotFound          = "HandleNotFound"          // 400
	NameInvalidEmail            = "InvalidEmail"            // 400
	NameTokenRequired           = "TokenRequired"           // 400
	NameBlockNotFound           = "BlockNotFound"           // 400
	NameBadExpiration           = "BadExpiration"           // 400
	NameIncompatibleDidDoc      = "IncompatibleDidDoc"      // 400: createAccount's plcOp does not point here
)

// TrimSentinel returns err's message without the leading "sentinel: " that wrapping added, for error messages
// that carry a store's detail but not its sentinel's wording.
func TrimSentinel(err, sentinel error) string {
	msg := err.Error()
	if len(msg) > len(sentinel.Error())+2 && msg[:len(sentinel.Error())] == sentinel.Error() {
		return msg[len(sentinel.Error())+2:]
	}
	return msg
}

func mk(status int, name, format string, args []any) *Error {
	return NewError(status, name, format, args...)
}

// InvalidRequest: 400 InvalidRequest, the generic client error.
func InvalidRequest(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameInvalidRequest, format, args)
}

// AuthMissing: 401, no credentials were sent where they are required.
func AuthMissing(format string, args ...any) *Error {
	return mk(http.StatusUnauthorized, NameAuthMissing, format, args)
}

// AuthenticationRequired: 401, credentials were sent but are wrong (e.g. bad password).
func AuthenticationRequired(format string, args ...any) *Error {
	return mk(http.StatusUnauthorized, NameAuthenticationRequired, format, args)
}

// ExpiredToken: 400 (the reference throws InvalidRequestError, not 401).
func ExpiredToken(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameExpiredToken, format, args)
}

// InvalidToken: 400 (InvalidRequestError in the reference).
func InvalidToken(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameInvalidToken, format, args)
}

// Forbidden: 403.
func Forbidden(format string, args ...any) *Error {
	return mk(http.StatusForbidden, NameForbidden, format, args)
}

// RecordNotFound: 400 (the reference uses InvalidRequestError for it).
func RecordNotFound(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameRecordNotFound, format, args)
}

// RepoNotFound: 400.
func RepoNotFound(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameRepoNotFound, format, args)
}

// InvalidSwap: 400, swapRecord/swapCommit did not match.
func InvalidSwap(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameInvalidSwap, format, args)
}

// AccountTakedown: 401, as raised by the reference's auth verifier and
// createSession (AuthRequiredError). Use NewError(400, ...) where the
// reference raises InvalidRequestError instead.
func AccountTakedown(format string, args ...any) *Error {
	return mk(http.StatusUnauthorized, NameAccountTakedown, format, args)
}

// AccountDeactivated: 401 at authentication (reference auth verifier,
// AuthRequiredError). See AccountDeactivatedRequest for the 400 variant.
func AccountDeactivated(format string, args ...any) *Error {
	return mk(http.StatusUnauthorized, NameAccountDeactivated, format, args)
}

// AccountDeactivatedRequest: 400 AccountDeactivated, for checks made after
// authentication (e.g. a write to a deactivated repo).
func AccountDeactivatedRequest(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameAccountDeactivated, format, args)
}

// RepoDeactivated: 400 (sync endpoints on a deactivated account).
func RepoDeactivated(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameRepoDeactivated, format, args)
}

// RepoTakendown: 400.
func RepoTakendown(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameRepoTakendown, format, args)
}

// RepoSuspended: 400.
func RepoSuspended(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameRepoSuspended, format, args)
}

// HandleNotAvailable: 400.
func HandleNotAvailable(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameHandleNotAvailable, format, args)
}

// InvalidHandle: 400.
func InvalidHandle(format string, args ...any) *Error {
	return mk(http.StatusBadRequest, NameInvalidHandle, format, args)
}

// PayloadTooLarge: 413.
func PayloadTooLarge(format string, args ...any) *Error {
	return mk(http.StatusRequestEntityTooLarge, NamePayloadTooLarge, format, args)
}

// RateLimitExceeded: 429. Add RateLimit-* headers with WithHeader.
func RateLimitExceeded(format string, args ...any) *Error {
	return mk(http.StatusTooManyRequests, NameRateLimitExceeded, format, args)
}

// MethodNotImplemented: 501.
func MethodNotImplemented(format string, args ...any) *Error {
	return mk(http.StatusNotImplemented, NameMethodNotImplemented, format, args)
}

// UpstreamFailure: 502 (proxying).
func UpstreamFailure(format string, args ...any) *Error {
	return mk(http.StatusBadGateway, NameUpstreamFailure, format, args)
}

// UpstreamTimeout: 504 (proxying).
func UpstreamTimeout(format string, args ...any) *Error {
	return mk(http.StatusGatewayTimeout, NameUpstreamTimeout, format, args)
}

// InternalServerError: 500. Whatever message is given, the client only ever
// sees "Internal Server Error"; the message is logged.
func InternalServerError(format string, args ...any) *Error {
	return mk(http.StatusInternalServerError, NameInternalServerError, format, args)
}

// nameForStatus gives the XRPC error name used for a bare HTTP status.
func nameForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return NameInvalidRequest
	case http.StatusUnauthorized:
		return NameAuthenticationRequired
	case http.StatusForbidden:
		return NameForbidden
	case http.StatusNotFound:
		return NameNotFound
	case http.StatusMethodNotAllowed:
		return NameMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return NamePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return NameUnsupportedMediaType
	case http.StatusTooManyRequests:
		return NameRateLimitExceeded
	case http.StatusNotImplemented:
		return NameMethodNotImplemented
	case http.StatusBadGateway:
		return NameUpstreamFailure
	case http.StatusServiceUnavailable:
		return NameNotEnoughResources
	case http.StatusGatewayTimeout:
		return NameUpstreamTimeout
	}
	if status >= 500 {
		return NameInternalServerError
	}
	return NameInvalidRequest
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

// ToError maps any error to the *Error that would be written for it, and
// reports whether the original error must be logged (it was hidden).
func ToError(err error) (xe *Error, hidden bool) {
	var e *Error
	if errors.As(err, &e) {
		if e.Status < 400 || e.Status > 599 {
			return &Error{Status: 500, Name: NameInternalServerError, Message: "Internal Server Error"}, true
		}
		if e.Status == http.StatusInternalServerError {
			// Never leak a 500's text (it tends to wrap DB or Go errors).
			return &Error{Status: 500, Name: nonEmpty(e.Name, NameInternalServerError), Message: "Internal Server Error", Headers: e.Headers}, true
		}
		if e.Name == "" {
			cp := *e
			cp.Name = nameForStatus(e.Status)
			return &cp, false
		}
		return e, false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return PayloadTooLarge("Request entity too large"), false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status := he.Code
		if status < 400 || status > 599 {
			status = 500
		}
		// Use the canonical text, not he.Message: echo and middleware messages
		// can carry parser errors or request fragments.
		msg := http.StatusText(status)
		switch status {
		case http.StatusRequestEntityTooLarge:
			msg = "Request entity too large"
		case http.StatusInternalServerError:
			msg = "Internal Server Error"
		}
		return &Error{Status: status, Name: nameForStatus(status), Message: msg}, status >= 500
	}
	return &Error{Status: 500, Name: NameInternalServerError, Message: "Internal Server Error"}, true
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ErrorHandler is the echo.HTTPErrorHandler for the whole server: the one
// place errors become HTTP responses. Unexpected errors are logged with the
// request method and path and answered with an opaque 500.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return func(err error, c echo.Context) {
		req := c.Request()
		xe, hidden := ToError(err)
		if hidden {
			level := slog.LevelError
			if errors.Is(err, context.Canceled) {
				level = slog.LevelDebug // client went away
			}
			logger.Log(req.Context(), level, "xrpc request failed", "method", req.Method, "path", req.URL.Path, "status", xe.Status, "err", err)
		}
		if c.Response().Committed {
			if !hidden {
				logger.Debug("error after response was committed", "path", req.URL.Path, "err", err)
			}
			return
		}
		h := c.Response().Header()
		for k, v := range xe.Headers {
			h.Set(k, v)
		}
		var werr error
		if req.Method == http.MethodHead {
			werr = c.NoContent(xe.Status)
		} else {
			werr = c.JSON(xe.Status, errorBody{Error: xe.Name, Message: xe.Message})
		}
		if werr != nil {
			logger.Debug("writing error response", "path", req.URL.Path, "err", werr)
		}
	}
}
