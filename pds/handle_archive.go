package pds

import (
	"net/http"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/xrpc"
)

// The operator's account archive methods (org.pdsgo.admin.exportAccount / importAccount, behind RequireAdmin):
// the archive itself is pds/accounts' (archive.go).

// handleAdminExportAccount: POST org.pdsgo.admin.exportAccount {did, deactivate?, targetUrl?, targetRotationKey?}
// answers the archive (application/x-tar).
func (s *Server) handleAdminExportAccount(c echo.Context) error {
	var in struct {
		DID               string `json:"did"`
		Deactivate        bool   `json:"deactivate"`
		TargetURL         string `json:"targetUrl"`
		TargetRotationKey string `json:"targetRotationKey"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	w := &lazyResponse{c: c, contentType: "application/x-tar"}
	err := s.accounts.Export(c.Request().Context(), syntax.DID(in.DID), accounts.ExportOptions{Deactivate: in.Deactivate, TargetURL: in.TargetURL, TargetRotationKey: in.TargetRotationKey}, w)
	if err != nil {
		if !w.started {
			return err
		}
		s.log.Error("account export failed mid-stream", "did", in.DID, "err", err)
		panic(http.ErrAbortHandler) // a truncated archive must not look complete
	}
	if !w.started {
		w.start()
	}
	return nil
}

// handleAdminImportAccount: POST org.pdsgo.admin.importAccount with an archive body.
func (s *Server) handleAdminImportAccount(c echo.Context) error {
	res, err := s.accounts.Import(c.Request().Context(), c.Request().Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// lazyResponse sends the status and headers on the first write, so errors before any output are XRPC errors.
type lazyResponse struct {
	c           echo.Context
	contentType string
	started     bool
}

func (w *lazyResponse) start() {
	w.started = true
	w.c.Response().Header().Set(echo.HeaderContentType, w.contentType)
	w.c.Response().WriteHeader(http.StatusOK)
}

func (w *lazyResponse) Write(p []byte) (int, error) {
	if !w.started {
		w.start()
	}
	return w.c.Response().Write(p)
}
