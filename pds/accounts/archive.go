package accounts

import (
	"archive/tar"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Account archives: an operator moves an account between two servers it runs (pds account export / import,
// through the admin-only methods org.pdsgo.admin.exportAccount and importAccount). Unlike a user migration
// (package migrate), everything this server holds for the account moves, secrets included:
//
//   - the account row: handle, email (and whether it was confirmed), password hash, creation time, and the repo
//     signing key. The key moves so the DID document's verification method stays right: only the PDS endpoint
//     (and, for did:plc, the rotation key) must change;
//   - app passwords (hashes), preferences (every namespace), the repository (CAR) and every blob the records
//     reference that the server has;
//   - for a did:plc, optionally a PLC operation signed by the exporting server (whose rotation key the document
//     lists) that points the DID at the target (its URL and rotation key given at export): the import submits
//     it once the repository and blobs are in place, then activates the account there.
//
// Sessions, pending email tokens, invite codes and moderation state do not move. The export deactivates the
// account first (writes after it would be lost); the archive is a tar stream: manifest.json, repo.car, then
// blobs/<cid>. It holds the signing key and password hashes: keep it as secret as the data directory.

const (
	archiveFormat  = "pdsgo-account-archive"
	archiveVersion = 1
	// maxManifestSize bounds manifest.json (blob lists of large accounts included).
	maxManifestSize = 256 << 20
)

type archiveManifest struct {
	Format       string               `json:"format"`
	Version      int                  `json:"version"`
	ExportedAt   time.Time            `json:"exportedAt"`
	SourceURL    string               `json:"sourceUrl"`
	SourceDID    string               `json:"sourceDid"`
	Account      archiveAccount       `json:"account"`
	AppPasswords []archiveAppPassword `json:"appPasswords"`
	Preferences  []archivePreference  `json:"preferences"`
	Repo         archiveRepo          `json:"repo"`
	Blobs        []archiveBlob        `json:"blobs"`
	PLCOperation json.RawMessage      `json:"plcOperation,omitempty"`
}

type archiveAccount struct {
	DID              string     `json:"did"`
	Handle           string     `json:"handle"`
	Email            string     `json:"email"`
	EmailConfirmedAt *time.Time `json:"emailConfirmedAt,omitempty"`
	PasswordHash     string     `json:"passwordHash"`
	SigningKey       string     `json:"signingKeyK256Hex"`
	CreatedAt        time.Time  `json:"createdAt"`
}

type archiveAppPassword struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"passwordHash"`
	Privileged   bool      `json:"privileged"`
	CreatedAt    time.Time `json:"createdAt"`
}

type archivePreference struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

type archiveRepo struct {
	Commit  string `json:"commit"`
	Rev     string `json:"rev"`
	Records int64  `json:"records"`
	Size    int64  `json:"size"`
}

type archiveBlob struct {
	CID      string `json:"cid"`
	MimeType string `json:"mimeType"`
	Size     int64  `json:"size"`
}

// ExportOptions adjust Export.
type ExportOptions struct {
	// Deactivate deactivates an active account first (otherwise an active account is refused).
	Deactivate bool
	// TargetURL and TargetRotationKey (a did:key) name the server the account moves to: a did:plc archive then
	// carries a PLC operation, signed here, that points the DID there.
	TargetURL, TargetRotationKey string
}

// Export writes the archive of the account did to w (see the top of this file). Every check runs and
// the repository is spooled before the first byte is written, so a refusal leaves w empty.
func (s *Service) Export(ctx context.Context, did syntax.DID, opts ExportOptions, w io.Writer) error {
	acct, err := s.Store.AccountByDID(ctx, did)
	if err != nil {
		return xrpcerr.AccountNamed(err, did.String())
	}
	if acct.TakedownRef != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	if acct.DeactivatedAt == nil {
		if !opts.Deactivate {
			return xrpc.InvalidRequest("The account is active: deactivate it first (writes after the export would be lost)")
		}
		if err := s.Deactivate(ctx, acct, nil); err != nil {
			return err
		}
	}
	m := &archiveManifest{
		Format: archiveFormat, Version: archiveVersion, ExportedAt: time.Now().UTC(),
		SourceURL: s.cfg.PublicURL, SourceDID: s.cfg.ServiceDID,
		Account: archiveAccount{
			DID: acct.DID.String(), Handle: acct.Handle, Email: acct.Email, EmailConfirmedAt: acct.EmailConfirmedAt,
			PasswordHash: acct.PasswordHash, SigningKey: hex.EncodeToString(acct.SigningKey), CreatedAt: acct.CreatedAt,
		},
		AppPasswords: []archiveAppPassword{}, Preferences: []archivePreference{}, Blobs: []archiveBlob{},
	}
	if opts.TargetURL != "" {
		op, err := s.handoffOperation(ctx, acct, opts)
		if err != nil {
			return err
		}
		if m.PLCOperation, err = json.Marshal(op); err != nil {
			return err
		}
	}
	aps, err := s.Store.AppPasswordHashes(ctx, did)
	if err != nil {
		return err
	}
	for _, ap := range aps {
		m.AppPasswords = append(m.AppPasswords, archiveAppPassword(ap))
	}
	prefs, err := s.Store.AllPreferences(ctx, did)
	if err != nil {
		return err
	}
	for _, p := range prefs {
		m.Preferences = append(m.Preferences, archivePreference(p))
	}

	// The repository, spooled (a tar entry needs its size first) beside the data, and the blobs' metadata.
	spool, err := os.CreateTemp(s.cfg.DataDirectory, "export-*.car")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	r, err := s.d.Repos.Repo(ctx, did)
	if err != nil {
		return xrpcerr.Repo(err)
	}
	err = func() error {
		defer r.Release()
		head, err := r.Head(ctx)
		if err != nil {
			return err
		}
		if m.Repo.Records, err = r.RecordCount(ctx); err != nil {
			return err
		}
		m.Repo.Commit, m.Repo.Rev = head.Commit.String(), head.Rev
		if err := r.WriteCAR(ctx, spool, ""); err != nil {
			return err
		}
		for cursor := ""; ; {
			cids, next, err := r.ListBlobs(ctx, "", cursor, 1000)
			if err != nil {
				return err
			}
			for _, cs := range cids {
				c, err := cid.Decode(cs)
				if err != nil {
					return err
				}
				b, err := r.GetBlob(ctx, c)
				if errors.Is(err, repo.ErrBlobNotFound) {
					continue // referenced but never uploaded here: the target lists it as missing
				}
				if err != nil {
					return err
				}
				if b.State != repo.BlobReady {
					continue
				}
				// Taken-down blobs stay behind (moderation state does not move); so do bytes that are gone.
				if down, err := s.BlobTakendown(ctx, did, cs); err != nil {
					return err
				} else if down {
					continue
				}
				if has, err := s.d.Blobs.HasBytes(ctx, did, c); err != nil {
					return err
				} else if !has {
					continue
				}
				m.Blobs = append(m.Blobs, archiveBlob{CID: cs, MimeType: b.MimeType, Size: b.Size})
			}
			if next == "" {
				return nil
			}
			cursor = next
		}
	}()
	if err != nil {
		return err
	}
	if m.Repo.Size, err = spool.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	put := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.ExportedAt, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		n, err := io.Copy(tw, io.LimitReader(body, size))
		if err == nil && n != size {
			err = fmt.Errorf("%s: %d bytes, expected %d", name, n, size)
		}
		return err
	}
	if err := put("manifest.json", int64(len(manifest)), strings.NewReader(string(manifest))); err != nil {
		return err
	}
	if err := put("repo.car", m.Repo.Size, spool); err != nil {
		return err
	}
	for _, b := range m.Blobs {
		c, _ := cid.Decode(b.CID)
		obj, err := s.d.Blobs.Open(ctx, did, c)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.CID, err)
		}
		err = put("blobs/"+b.CID, b.Size, obj)
		obj.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// handoffOperation signs, with this server's rotation key, the PLC operation that moves acct to the target:
// its PDS endpoint, and the target's rotation key in place of this server's.
func (s *Service) handoffOperation(ctx context.Context, acct *accountstore.Account, opts ExportOptions) (*plc.Operation, error) {
	if !isPLC(acct.DID) {
		return nil, xrpc.InvalidRequest("%s is not a did:plc: point its DID document at the target yourself", acct.DID)
	}
	if !strings.HasPrefix(opts.TargetURL, "https://") && !strings.HasPrefix(opts.TargetURL, "http://") {
		return nil, xrpc.InvalidRequest("targetUrl must be an http(s) URL")
	}
	if _, err := atcrypto.ParsePublicDIDKey(opts.TargetRotationKey); err != nil {
		return nil, xrpc.InvalidRequest("targetRotationKey must be the target server's rotation key (a did:key)")
	}
	ours := s.RotationDIDKey()
	return s.signedPLCUpdate(ctx, acct.DID, func(op *plc.Operation) {
		if op.Services == nil {
			op.Services = map[string]plc.Service{}
		}
		op.Services[plc.ServiceAtprotoPDS] = plc.Service{Type: plc.ServiceTypeAtprotoPDS, Endpoint: strings.TrimRight(opts.TargetURL, "/")}
		if i := slices.Index(op.RotationKeys, ours); i >= 0 {
			op.RotationKeys[i] = opts.TargetRotationKey
		} else if !slices.Contains(op.RotationKeys, opts.TargetRotationKey) {
			op.RotationKeys = append([]string{opts.TargetRotationKey}, op.RotationKeys...)
		}
	})
}

// ImportAccountResult reports an Import.
type ImportAccountResult struct {
	DID          syntax.DID `json:"did"`
	Handle       string     `json:"handle"`
	Records      int64      `json:"records"`
	Blobs        int        `json:"blobs"`
	Preferences  int        `json:"preferences"`
	AppPasswords int        `json:"appPasswords"`
	PLCSubmitted bool       `json:"plcSubmitted"`
	Activated    bool       `json:"activated"`
	// Note says what is left to do when the account could not be activated.
	Note string `json:"note,omitempty"`
}

// Import reads an archive made by Export and hosts the account here: created deactivated (or, on
// a second run, the deactivated account of an earlier one is completed), repository imported (verified
// against the DID document, as importRepo), blobs stored, then the archive's PLC operation submitted and the
// account activated when the DID document points here.
func (s *Service) Import(ctx context.Context, r io.Reader) (*ImportAccountResult, error) {
	tr := tar.NewReader(r)
	next := func(want string) (*tar.Header, error) {
		h, err := tr.Next()
		if err != nil {
			return nil, xrpc.InvalidRequest("Invalid account archive: expected %s: %v", want, err)
		}
		return h, nil
	}
	h, err := next("manifest.json")
	if err != nil {
		return nil, err
	}
	if h.Name != "manifest.json" || h.Size > maxManifestSize {
		return nil, xrpc.InvalidRequest("Invalid account archive: it must start with manifest.json")
	}
	var m archiveManifest
	if err := json.NewDecoder(io.LimitReader(tr, h.Size)).Decode(&m); err != nil {
		return nil, xrpc.InvalidRequest("Invalid account archive manifest: %v", err)
	}
	if m.Format != archiveFormat || m.Version != archiveVersion {
		return nil, xrpc.InvalidRequest("Not an account archive of a supported version (%q %d)", m.Format, m.Version)
	}
	did, err := syntax.ParseDID(m.Account.DID)
	if err != nil {
		return nil, xrpc.InvalidRequest("Invalid DID in the archive")
	}
	keyBytes, err := hex.DecodeString(m.Account.SigningKey)
	if err != nil {
		return nil, xrpc.InvalidRequest("Invalid signing key in the archive")
	}
	key, err := atcrypto.ParsePrivateBytesK256(keyBytes)
	if err != nil {
		return nil, xrpc.InvalidRequest("Invalid signing key in the archive")
	}

	unlock := s.locks.Lock(did)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	acct, err := s.adoptAccount(ctx, did, &m, key)
	if err != nil {
		return nil, err
	}
	res := &ImportAccountResult{DID: acct.DID, Handle: acct.Handle}
	if m.Account.EmailConfirmedAt != nil && acct.EmailConfirmedAt == nil {
		if err := s.Store.SetEmailConfirmed(ctx, acct.DID, *m.Account.EmailConfirmedAt); err != nil {
			return nil, err
		}
	}
	for _, ap := range m.AppPasswords {
		err := s.Store.CreateAppPassword(ctx, acct.DID, ap.Name, ap.PasswordHash, ap.Privileged, ap.CreatedAt)
		if err != nil && !errors.Is(err, accountstore.ErrAppPasswordExists) {
			return nil, err
		}
		res.AppPasswords++
	}
	prefs := make([]accountstore.Preference, len(m.Preferences))
	for i, p := range m.Preferences {
		prefs[i] = accountstore.Preference(p)
	}
	if err := s.Store.ReplaceAllPreferences(ctx, acct.DID, prefs); err != nil {
		return nil, err
	}
	res.Preferences = len(prefs)

	// The repository: the document still names the account's key (it moved with it), so the commit verifies.
	if h, err = next("repo.car"); err != nil {
		return nil, err
	}
	if h.Name != "repo.car" {
		return nil, xrpc.InvalidRequest("Invalid account archive: repo.car must follow the manifest")
	}
	verifyKey, err := s.CurrentSigningKey(ctx, acct.DID)
	if err != nil {
		return nil, err
	}
	ir, err := s.d.Writer.Import(ctx, did, io.LimitReader(tr, h.Size), repo.ImportOptions{VerifyKey: verifyKey, Signer: key})
	if err != nil {
		return nil, xrpcerr.ArchiveImport(err)
	}
	res.Records = ir.Records

	mimes := map[string]string{}
	for _, b := range m.Blobs {
		mimes[b.CID] = b.MimeType
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, xrpc.InvalidRequest("Invalid account archive: %v", err)
		}
		name, ok := strings.CutPrefix(h.Name, "blobs/")
		c, cerr := cid.Decode(name)
		if !ok || cerr != nil || path.Base(h.Name) != name {
			return nil, xrpc.InvalidRequest("Invalid account archive: unexpected entry %q", h.Name)
		}
		if err := s.d.Blobs.StoreArchived(ctx, acct.DID, c, mimes[name], tr, h.Size); err != nil {
			return nil, xrpcerr.Repo(err)
		}
		res.Blobs++
	}

	if len(m.PLCOperation) > 0 {
		if err := s.submitHandoff(ctx, acct, m.PLCOperation); err != nil {
			return nil, err
		}
		res.PLCSubmitted = true
	}
	unlock() // activateAccount takes the lock itself
	locked = false
	if err := s.CheckDIDDocument(ctx, acct); err != nil {
		res.Note = "the account is deactivated until its DID document points here: " + err.Error()
		return res, nil
	}
	if err := s.Activate(ctx, acct); err != nil {
		return nil, err
	}
	res.Activated = true
	return res, nil
}

// adoptAccount creates the archive's account, deactivated, with an empty repository; a deactivated account of
// the same DID left by an earlier run is taken as it is.
func (s *Service) adoptAccount(ctx context.Context, did syntax.DID, m *archiveManifest, key *atcrypto.PrivateKeyK256) (*accountstore.Account, error) {
	if acct, err := s.Store.AccountByDID(ctx, did); err == nil {
		if acct.DeactivatedAt == nil || acct.TakedownRef != "" {
			return nil, xrpc.InvalidRequest("The account %s is already hosted here and active", did)
		}
		if hex.EncodeToString(acct.SigningKey) != m.Account.SigningKey {
			return nil, xrpc.InvalidRequest("The account %s exists here with another signing key", did)
		}
		return acct, nil
	} else if !errors.Is(err, accountstore.ErrNotFound) {
		return nil, err
	}
	now := time.Now()
	acct := &accountstore.Account{
		DID: did, Handle: m.Account.Handle, Email: m.Account.Email, PasswordHash: m.Account.PasswordHash,
		SigningKey: key.Bytes(), CreatedAt: m.Account.CreatedAt, DeactivatedAt: &now,
	}
	if acct.CreatedAt.IsZero() {
		acct.CreatedAt = now
	}
	if err := s.Store.CreateAccount(ctx, acct, ""); err != nil {
		return nil, xrpcerr.ArchiveAccountClaim(err, acct)
	}
	commit, err := s.d.Repos.Create(ctx, did, key)
	if err == nil {
		// Never sequenced: activation announces the head with #sync (as createAccountWithDID).
		err = s.d.Repos.With(ctx, did, func(r *repo.Repo) error { return r.TrimOutbox(ctx, commit.Rev) })
	}
	if err != nil {
		bg := context.WithoutCancel(ctx)
		s.d.Repos.Delete(bg, did)
		s.Store.DeleteAccount(bg, did)
		return nil, err
	}
	return acct, nil
}

// submitHandoff checks that the archive's PLC operation makes this server the account's host, and submits it.
func (s *Service) submitHandoff(ctx context.Context, acct *accountstore.Account, raw json.RawMessage) error {
	parsed, err := plc.ParseOperation(raw)
	if err != nil {
		return xrpc.InvalidRequest("Invalid PLC operation in the archive")
	}
	op, ok := parsed.(*plc.Operation)
	if !ok || op.Validate() != nil {
		return xrpc.InvalidRequest("Invalid PLC operation in the archive")
	}
	signing, err := SigningDIDKey(acct)
	if err != nil {
		return err
	}
	if err := op.CheckAtproto(plc.AtprotoExpect{RotationKey: s.RotationDIDKey(), PDSEndpoint: s.cfg.PublicURL, SigningKey: signing}); err != nil {
		return xrpc.InvalidRequest("The archive's PLC operation does not hand the account to this server (%s): export again with this server's URL and rotation key", strings.TrimPrefix(err.Error(), "plc: "))
	}
	if err := s.d.PLC.Submit(ctx, acct.DID.String(), op); err != nil {
		return xrpcerr.PLC(err, s.log)
	}
	s.forgetIdentity(ctx, acct.DID)
	return nil
}
