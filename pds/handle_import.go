package pds

import (
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// com.atproto.repo.importRepo: the repository of an account migrating here (see repo/import.go and
// docs/migration.md). Unlike the reference PDS, which verifies neither the commit's DID nor its signature and
// keeps the imported commit (signed with the old server's key) as the head, this server:
//   - accepts imports only while the account is deactivated (a migration target starts deactivated), so the
//     firehose never sees a repository swapped under an active account; activateAccount then announces the new
//     head with #sync;
//   - checks every block's hash, the MST's structure, that the commit is the account's and that it is signed
//     with the key of the DID document as it is now (the old server's key, before the PLC operation);
//   - re-signs: the head becomes a new commit over the same data root, signed with this server's key for the
//     account, with a rev after the imported one, so what relays fetch after activation verifies against the
//     DID document that points here.

const carMIME = "application/vnd.ipld.car"

func (s *Server) handleImportRepo(c echo.Context) error {
	ctx := c.Request().Context()
	req := c.Request()
	if !s.cfg.AcceptingRepoImports {
		return xrpc.InvalidRequest("Service is not accepting repo imports")
	}
	ct := req.Header.Get("Content-Type")
	if ct == "" {
		return xrpc.InvalidRequest("Request encoding (Content-Type) required but not provided")
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != carMIME {
		return xrpc.InvalidRequest("Wrong request encoding (Content-Type): %s", ct)
	}
	if req.ContentLength > s.cfg.MaxRepoImportSize {
		return xrpc.PayloadTooLarge("Repository is larger than the import limit (%d bytes)", s.cfg.MaxRepoImportSize)
	}
	did := auth.CallerOf(c).DID
	// The account's lifecycle lock: activation waits for an import in progress, and the account stays
	// deactivated for the whole import.
	unlock := s.accounts.Lock(did)
	defer unlock()
	acct, err := s.accounts.ByDID(c.Request().Context(), auth.CallerOf(c).DID)
	if err != nil {
		return err
	}
	if acct.TakedownRef != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	if acct.DeactivatedAt == nil {
		return xrpc.InvalidRequest("Repo imports are accepted only while the account is deactivated (as after createAccount with an existing DID)")
	}
	verifyKey, err := s.accounts.CurrentSigningKey(ctx, acct.DID)
	if err != nil {
		return err
	}
	signer, err := atcrypto.ParsePrivateBytesK256(acct.SigningKey)
	if err != nil {
		return fmt.Errorf("account signing key: %w", err)
	}
	start := time.Now()
	res, err := s.writer.Import(ctx, acct.DID, req.Body, repo.ImportOptions{
		VerifyKey: verifyKey,
		Signer:    signer,
		MaxBytes:  s.cfg.MaxRepoImportSize,
	})
	if err != nil {
		return xrpcerr.Import(err, s.cfg.MaxRepoImportSize)
	}
	s.log.Info("repository imported", "did", acct.DID, "records", res.Records, "blocks", res.Blocks,
		"blobs", res.BlobRefs, "bytes", res.Bytes, "importedRev", res.ImportedRev, "rev", res.Head.Rev,
		"duration", time.Since(start).Round(time.Millisecond))
	return c.NoContent(http.StatusOK)
}
