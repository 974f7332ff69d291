package pds

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

const carContentType = "application/vnd.ipld.car"

// streamCAR starts a CAR response; once the first byte is written an error can only abort the connection.
func streamCAR(c echo.Context, write func(w *responseWriter) error) error {
	w := &responseWriter{c: c}
	if err := write(w); err != nil {
		if !w.started {
			return err
		}
		panic(http.ErrAbortHandler) // a truncated CAR must not look complete
	}
	if !w.started {
		w.start()
	}
	return nil
}

// responseWriter sends headers on the first write, so errors before any output still become XRPC errors.
type responseWriter struct {
	c       echo.Context
	started bool
}

func (w *responseWriter) start() {
	w.started = true
	w.c.Response().Header().Set(echo.HeaderContentType, carContentType)
	w.c.Response().WriteHeader(http.StatusOK)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.start()
	}
	return w.c.Response().Write(p)
}

func (s *Server) handleSyncGetRepo(c echo.Context) error {
	_, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	since := xrpc.ParamString(c, "since")
	return streamCAR(c, func(w *responseWriter) error {
		return r.WriteCAR(c.Request().Context(), w, since)
	})
}

// handleSyncGetCheckout serves the deprecated com.atproto.sync.getCheckout: the whole repository as a CAR,
// as getRepo without since (the reference's behaviour).
func (s *Server) handleSyncGetCheckout(c echo.Context) error {
	_, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	return streamCAR(c, func(w *responseWriter) error {
		return r.WriteCAR(c.Request().Context(), w, "")
	})
}

// handleSyncGetHead serves the deprecated com.atproto.sync.getHead: the current commit's CID as root.
func (s *Server) handleSyncGetHead(c echo.Context) error {
	_, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	head, err := r.Head(c.Request().Context())
	if err != nil {
		return err
	}
	if !head.Commit.Defined() {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameHeadNotFound, "Could not find root for DID: %s", r.DID())
	}
	return c.JSON(http.StatusOK, map[string]string{"root": head.Commit.String()})
}

func (s *Server) handleSyncGetRecord(c echo.Context) error {
	acct, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	collection, rkey := xrpc.ParamString(c, "collection"), xrpc.ParamString(c, "rkey")
	if ref, err := s.accounts.RecordTakedownRef(c.Request().Context(), acct.DID, repo.RecordURI(acct.DID, collection, rkey)); err != nil {
		return err
	} else if ref != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRecordNotFound, "Could not locate record")
	}
	return streamCAR(c, func(w *responseWriter) error {
		return r.WriteRecordProof(c.Request().Context(), w, collection, rkey)
	})
}

func (s *Server) handleSyncGetBlocks(c echo.Context) error {
	acct, err := s.accounts.ForSync(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	var cids []cid.Cid
	for _, v := range xrpc.ParamStrings(c, "cids") {
		cc, err := cid.Decode(v)
		if err != nil {
			return xrpc.InvalidRequest("Invalid CID: %s", v)
		}
		cids = append(cids, cc)
	}
	r, err := s.accounts.OpenRepo(c.Request().Context(), acct.DID)
	if err != nil {
		return err
	}
	defer r.Release()
	// A getBlocks answer is bounded by the number of CIDs asked for, so it is built before anything is sent:
	// a missing block must be an error, not a short CAR.
	var buf bytes.Buffer
	missing, err := r.WriteBlocks(c.Request().Context(), &buf, cids)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		strs := make([]string, len(missing))
		for i, m := range missing {
			strs[i] = m.String()
		}
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameBlockNotFound, "Could not find all requested blocks: %s", strings.Join(strs, ", "))
	}
	return c.Blob(http.StatusOK, carContentType, buf.Bytes())
}

func (s *Server) handleSyncGetLatestCommit(c echo.Context) error {
	_, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	head, err := r.Head(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"cid": head.Commit.String(), "rev": head.Rev})
}

func (s *Server) handleSyncGetRepoStatus(c echo.Context) error {
	did := xrpc.ParamDID(c, "did")
	acct, err := s.accounts.AccountByDID(c.Request().Context(), did)
	if err != nil {
		return xrpcerr.RepoFor(err, did)
	}
	out := map[string]any{"did": acct.DID, "active": acct.Active()}
	if st := acct.Status(); st != "" {
		out["status"] = st
	} else if r, err := s.accounts.OpenRepo(c.Request().Context(), acct.DID); err == nil {
		head, err := r.Head(c.Request().Context())
		r.Release()
		if err != nil {
			return err
		}
		out["rev"] = head.Rev
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleSyncListRepos(c echo.Context) error {
	ctx := c.Request().Context()
	limit := xrpc.ParamInt(c, "limit", 500)
	accts, err := s.accounts.ListAccounts(ctx, xrpc.ParamString(c, "cursor"), limit)
	if err != nil {
		return err
	}
	repos := make([]map[string]any, 0, len(accts))
	for _, a := range accts {
		r, err := s.repos.Repo(ctx, a.DID)
		if errors.Is(err, repo.ErrRepoNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		head, err := r.Head(ctx)
		r.Release()
		if err != nil {
			return err
		}
		entry := map[string]any{"did": a.DID, "head": head.Commit.String(), "rev": head.Rev, "active": a.Active()}
		if st := a.Status(); st != "" {
			entry["status"] = st
		}
		repos = append(repos, entry)
	}
	out := map[string]any{"repos": repos}
	if len(accts) == limit {
		out["cursor"] = accts[len(accts)-1].DID
	}
	return c.JSON(http.StatusOK, out)
}
