package pds

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// blobOutput is the blob ref of uploadBlob's answer.
type blobOutput struct {
	Type     string            `json:"$type"`
	Ref      map[string]string `json:"ref"`
	MimeType string            `json:"mimeType"`
	Size     int64             `json:"size"`
}

// handleUploadBlob streams the body to temporary storage while hashing it (the blob is never held in memory),
// then records and promotes it. Deactivated accounts may upload (a migration fills in its blobs before
// activation); taken-down ones may not.
func (s *Server) handleUploadBlob(c echo.Context) error {
	ctx := c.Request().Context()
	req := c.Request()
	acct, err := s.accounts.ByDID(ctx, auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if acct.TakedownRef != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	if req.Header.Get("Content-Type") == "" {
		return xrpc.InvalidRequest("Request encoding (Content-Type) required but not provided")
	}
	declared := blobstore.NormalizeMIME(req.Header.Get("Content-Type"))
	size := req.ContentLength // -1 when chunked
	if size > s.blobs.Limit() {
		return xrpc.PayloadTooLarge("Blob is larger than the upload limit (%d bytes)", s.blobs.Limit())
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	tmp, err := blobstore.Put(ctx, s.blobs.Store(), req.Body, size, s.blobs.Limit())
	if err != nil {
		return xrpcerr.Upload(err, s.blobs.Limit())
	}
	promoted := false
	defer func() {
		if !promoted {
			s.blobs.Store().DeleteTemp(context.WithoutCancel(ctx), tmp.Key)
		}
	}()

	did := acct.DID
	if down, err := s.accounts.BlobTakendown(ctx, did, tmp.CID.String()); err != nil {
		return err
	} else if down {
		return xrpc.InvalidRequest("Blob has been takendown, cannot re-upload")
	}
	r, err := s.repos.Repo(ctx, did)
	if err != nil {
		return xrpcerr.Repo(err)
	}
	defer r.Release()

	// The content decides the type; the declared one is the fallback. For a blob that records already
	// reference (an imported repository), the declared type is what the migrating client read from the old PDS,
	// which is what those records declare: keep it, or the records would no longer match their blob.
	mimeType := blobstore.DetectMIME(tmp.Head)
	if referenced, err := r.BlobReferenced(ctx, tmp.CID); err != nil {
		return err
	} else if referenced && declared != "" {
		mimeType = declared
	}
	if mimeType == "" {
		mimeType = declared
	}
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}

	row, promoted, err := s.blobs.Save(ctx, r, did, tmp, mimeType)
	if err != nil {
		return err
	}
	s.metrics.BlobReceived(tmp.Size)
	return c.JSON(http.StatusOK, map[string]any{"blob": blobOutput{
		Type:     "blob",
		Ref:      map[string]string{"$link": row.CID.String()},
		MimeType: row.MimeType,
		Size:     row.Size,
	}})
}

// blobNotFound is getBlob's answer for a blob it does not serve.
func blobNotFound() error {
	return xrpc.NewError(http.StatusNotFound, xrpc.NameBlobNotFound, "Blob not found")
}

// handleSyncGetBlob streams a blob with its stored MIME type. Range and conditional requests (ETag = CID) are
// served by http.ServeContent over a seekable object (ranged reads on S3). The headers keep a blob from ever
// running as a page of this origin.
func (s *Server) handleSyncGetBlob(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.ForSync(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	blobCID, err := cid.Decode(xrpc.ParamString(c, "cid"))
	if err != nil {
		return xrpc.InvalidRequest("Invalid cid: %s", xrpc.ParamString(c, "cid"))
	}
	if !blobstore.ValidCID(blobCID) {
		return blobNotFound()
	}
	row, err := s.blobRow(ctx, acct.DID, blobCID)
	if err != nil {
		return err
	}
	if row == nil || !row.Servable() {
		return blobNotFound()
	}
	if down, err := s.accounts.BlobTakendown(ctx, acct.DID, blobCID.String()); err != nil {
		return err
	} else if down {
		return blobNotFound()
	}
	obj, err := s.blobs.Store().Open(ctx, acct.DID, blobCID)
	if errors.Is(err, blobstore.ErrNotFound) {
		s.log.Warn("blob in the database but not in the blob store", "did", acct.DID, "cid", blobCID)
		return blobNotFound()
	}
	if err != nil {
		return err
	}
	defer obj.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, row.MimeType)
	h.Set("ETag", `"`+blobCID.String()+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	before := c.Response().Size
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, obj)
	if st := c.Response().Status; st == http.StatusOK || st == http.StatusPartialContent {
		s.metrics.BlobSent(c.Response().Size - before)
	}
	return nil
}

// blobRow reads a blob's metadata without pinning the repository while the blob streams; nil when unknown.
func (s *Server) blobRow(ctx context.Context, did syntax.DID, c cid.Cid) (*repo.Blob, error) {
	r, err := s.repos.Repo(ctx, did)
	if errors.Is(err, repo.ErrRepoNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Release()
	row, err := r.GetBlob(ctx, c)
	if errors.Is(err, repo.ErrBlobNotFound) {
		return nil, nil
	}
	return row, err
}

func (s *Server) handleSyncListBlobs(c echo.Context) error {
	ctx := c.Request().Context()
	_, r, err := s.accounts.SyncRepo(c.Request().Context(), xrpc.ParamDID(c, "did"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	defer r.Release()
	cids, cursor, err := r.ListBlobs(ctx, xrpc.ParamString(c, "since"), xrpc.ParamString(c, "cursor"), xrpc.ParamInt(c, "limit", 500))
	if err != nil {
		return err
	}
	out := map[string]any{"cids": nonNil(cids)}
	if cursor != "" {
		out["cursor"] = cursor
	}
	return c.JSON(http.StatusOK, out)
}

type missingBlob struct {
	CID       string `json:"cid"`
	RecordURI string `json:"recordUri"`
}

// handleListMissingBlobs lists the blobs the caller's records reference that this PDS does not have (account
// migration). Deactivated accounts may call it: that is when a migration needs it.
func (s *Server) handleListMissingBlobs(c echo.Context) error {
	ctx := c.Request().Context()
	did := auth.CallerOf(c).DID
	r, err := s.accounts.OpenRepo(c.Request().Context(), did)
	if err != nil {
		return err
	}
	defer r.Release()
	missing, cursor, err := r.ListMissingBlobs(ctx, xrpc.ParamString(c, "cursor"), xrpc.ParamInt(c, "limit", 500))
	if err != nil {
		return err
	}
	blobs := make([]missingBlob, len(missing))
	for i, m := range missing {
		blobs[i] = missingBlob{CID: m.CID, RecordURI: repo.RecordURI(did, m.Collection, m.RKey)}
	}
	out := map[string]any{"blobs": blobs}
	if cursor != "" {
		out["cursor"] = cursor
	}
	return c.JSON(http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
