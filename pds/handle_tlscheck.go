package pds

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// errNotHostedDomain: a name under none of the service handle domains (tls-check answers 400 for it).
var errNotHostedDomain = errors.New("handles are not provided on this domain")

// HostsName reports whether a TLS certificate for name belongs on this server: its hostname, or the handle of
// an account it hosts under a service handle domain (whatever the account's status, as the reference). Built-in
// ACME (PDS_TLS=auto) and a proxy's on-demand TLS (GET /tls-check) both ask it, so certificates are never
// requested for names the server does not host.
func (s *Server) HostsName(ctx context.Context, name string) (bool, error) {
	ok, err := s.hostsName(ctx, name)
	if errors.Is(err, errNotHostedDomain) {
		return false, nil
	}
	return ok, err
}

func (s *Server) hostsName(ctx context.Context, name string) (bool, error) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "" {
		return false, errNotHostedDomain
	}
	if name == strings.ToLower(s.cfg.Hostname) {
		return true, nil
	}
	if !s.cfg.IsServiceHandle(name) {
		return false, errNotHostedDomain
	}
	_, err := s.accounts.AccountByHandle(ctx, name)
	if errors.Is(err, accountstore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// handleTLSCheck is GET /tls-check?domain=: the "ask" endpoint of Caddy's on_demand_tls in the official
// distribution. 200 for the hostname and hosted handles, 400 for other domains, 404 for unknown handles.
func (s *Server) handleTLSCheck(c echo.Context) error {
	domain := c.QueryParam("domain")
	if domain == "" {
		return xrpc.InvalidRequest("bad or missing domain query param")
	}
	ok, err := s.hostsName(c.Request().Context(), domain)
	switch {
	case errors.Is(err, errNotHostedDomain):
		return xrpc.InvalidRequest("handles are not provided on this domain")
	case err != nil:
		return err
	case !ok:
		return xrpc.NewError(http.StatusNotFound, xrpc.NameNotFound, "handle not found for this domain")
	}
	return c.JSON(http.StatusOK, map[string]bool{"success": true})
}
