package pds

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/xrpc"
)

// The server-wide middlewares the route table (routes.go) installs.

// recoverMiddleware turns a handler panic into a 500 XRPC error (logged with its stack), never a crash.
func recoverMiddleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.Error("handler panic", "path", c.Request().URL.Path, "panic", r, "stack", string(debug.Stack()))
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
		// Browser OAuth clients read these (the DPoP nonce to use next; why a request was refused).
		h.Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
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
