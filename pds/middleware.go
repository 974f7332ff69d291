package pds

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/ratelimit"
	"github.com/pdsgo/pds/pds/requestid"
	"github.com/pdsgo/pds/xrpc"
)

// The server-wide middlewares the route table (routes.go) installs.

// requestMiddleware is the outermost middleware. It gives the request an ID (X-Request-Id in the response,
// request_id on every line logged with the request's context), answers errors itself (so the status is
// known here), records the request's metrics, and logs an access line at debug level.
//
// An inbound X-Request-Id is kept only from a trusted proxy (PDS_TRUSTED_PROXIES, as for X-Forwarded-For) and
// only when well-formed (requestid.Valid): a proxy's ID then ties its logs to ours, and no client can choose
// the ID its requests are logged under.
func (s *Server) requestMiddleware() echo.MiddlewareFunc {
	trusted := s.cfg.TrustedProxies
	m := s.metrics
	log := s.log
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req := c.Request()
			id := req.Header.Get(requestid.Header)
			if id == "" || !requestid.Valid(id) || !ratelimit.TrustedPeer(req.RemoteAddr, trusted) {
				id = requestid.New()
			}
			c.Response().Header()[requestid.Header] = []string{id}
			ctx := requestid.With(req.Context(), id)
			c.SetRequest(req.WithContext(ctx))
			if err := next(c); err != nil {
				c.Error(err)
			}
			d := time.Since(start)
			status := c.Response().Status
			if m != nil {
				m.Request(xrpc.MethodNSID(c), c.Path(), status, d)
			}
			if log.Enabled(ctx, slog.LevelDebug) {
				log.LogAttrs(ctx, slog.LevelDebug, "request", slog.String("method", req.Method), slog.String("path", req.URL.Path),
					slog.Int("status", status), slog.Duration("duration", d), slog.Int64("bytes", c.Response().Size), slog.String("remote", c.RealIP()))
			}
			return nil
		}
	}
}

// recoverMiddleware turns a handler panic into a 500 XRPC error (logged with its stack), never a crash.
func recoverMiddleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.ErrorContext(c.Request().Context(), "handler panic", "path", c.Request().URL.Path, "panic", r, "stack", string(debug.Stack()))
					err = xrpc.NewError(http.StatusInternalServerError, xrpc.NameInternalServerError, "Internal Server Error")
				}
			}()
			return next(c)
		}
	}
}

// corsMiddleware allows browser apps on any origin, as the reference PDS does.
func corsMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		// Browser OAuth clients read these (the DPoP nonce to use next; why a request was refused), and a web
		// app can show the request ID a failure report should quote.
		h.Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate, X-Request-Id")
		if c.Request().Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
			if req := c.Request().Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			}
			h.Set("Access-Control-Max-Age", "86400")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}
