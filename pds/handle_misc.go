package pds

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

func (s *Server) handleRoot(c echo.Context) error {
	return c.String(http.StatusOK, fmt.Sprintf(`This is an AT Protocol Personal Data Server (PDS): https://atproto.com

Most API routes are under /xrpc/

Manage your account: %s/account

  Version: %s
`, s.cfg.PublicURL, Version))
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

// handleCheckSignupQueue: com.atproto.temp.checkSignupQueue on a PDS without an entryway.
func (s *Server) handleCheckSignupQueue(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"activated": true})
}
