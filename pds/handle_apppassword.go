package pds

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

type appPasswordOutput struct {
	Name       string `json:"name"`
	Password   string `json:"password,omitempty"`
	CreatedAt  string `json:"createdAt"`
	Privileged bool   `json:"privileged"`
}

func (s *Server) handleCreateAppPassword(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Name       string `json:"name"`
		Privileged bool   `json:"privileged"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return xrpc.InvalidRequest("App password name must be 1 to 64 characters")
	}
	password, now, err := s.auth.CreateAppPassword(ctx, auth.CallerOf(c).DID, name, in.Privileged)
	if err != nil {
		return xrpcerr.AppPassword(err)
	}
	return c.JSON(http.StatusOK, appPasswordOutput{Name: name, Password: password, CreatedAt: now.Format(time.RFC3339Nano), Privileged: in.Privileged})
}

func (s *Server) handleListAppPasswords(c echo.Context) error {
	list, err := s.accounts.ListAppPasswords(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	out := make([]appPasswordOutput, len(list))
	for i, a := range list {
		out[i] = appPasswordOutput{Name: a.Name, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339Nano), Privileged: a.Privileged}
	}
	return c.JSON(http.StatusOK, map[string]any{"passwords": out})
}

func (s *Server) handleRevokeAppPassword(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if err := s.accounts.RevokeAppPassword(c.Request().Context(), auth.CallerOf(c).DID, in.Name); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
