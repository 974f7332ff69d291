package pds

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/xrpc"
)

func (s *Server) handleRoot(c echo.Context) error {
	return c.String(http.StatusOK, fmt.Sprintf(`This is an AT Protocol Personal Data Server (PDS): https://atproto.com

Most API routes are under /xrpc/

  Version: %s
`, Version))
}

func (s *Server) handleRobots(c echo.Context) error {
	return c.String(http.StatusOK, "# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n")
}

func (s *Server) handleHealth(c echo.Context) error {
	if err := s.accounts.Ping(c.Request().Context()); err != nil {
		s.log.Error("health check: account database", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"version": Version, "error": "Service Unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"version": Version})
}

// handleWellKnownDID answers /.well-known/atproto-did for handles on the service domains, from the Host header.
func (s *Server) handleWellKnownDID(c echo.Context) error {
	host := c.Request().Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	if !s.cfg.IsServiceHandle(host) {
		return c.String(http.StatusNotFound, "User not found")
	}
	acct, err := s.accounts.AccountByHandle(c.Request().Context(), host)
	if err != nil || !acct.Active() { // deactivated and taken-down accounts do not resolve (reference)
		return c.String(http.StatusNotFound, "User not found")
	}
	return c.String(http.StatusOK, acct.DID.String())
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
					log.Error("handler panic", "path", c.Request().URL.Path, "panic", r, "stack", string(debug.Stack()))
					err = xrpc.NewError(http.StatusInternalServerError, "InternalServerError", "Internal Server Error")
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

// handleCheckSignupQueue: com.atproto.temp.checkSignupQueue on a PDS without an entryway.
func (s *Server) handleCheckSignupQueue(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"activated": true})
}
