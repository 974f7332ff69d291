package pds

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

// Account lifecycle: handle changes, PLC operations, activation, deactivation and deletion. Each change to an
// account's identity or status holds that account's lock, so two changes never interleave their PLC operations
// or firehose events.

// Account statuses on the firehose (#account status).
const (
	statusDeactivated = "deactivated"
	statusTakendown   = "takendown"
	statusDeleted     = "deleted"
)

// deletionJobInterval is how often deactivated accounts are checked for a passed deleteAfter.
const deletionJobInterval = time.Minute

// didLocks is a lock per account DID; entries live only while held or awaited.
type didLocks struct {
	mu sync.Mutex
	m  map[string]*didLock
}

type didLock struct {
	mu   sync.Mutex
	refs int
}

func (l *didLocks) lock(did string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*didLock{}
	}
	e := l.m[did]
	if e == nil {
		e = &didLock{}
		l.m[did] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, did)
		}
		l.mu.Unlock()
	}
}

func isPLC(did string) bool { return strings.HasPrefix(did, "did:plc:") }

// signingDIDKey is the did:key of the account's repo signing key.
func signingDIDKey(acct *accountstore.Account) (string, error) {
	key, err := acct.Signer()
	if err != nil {
		return "", err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return "", err
	}
	return pub.DIDKey(), nil
}

// rotationDIDKey is the did:key of the server's PLC rotation key.
func (s *Server) rotationDIDKey() string {
	pub, err := s.cfg.RotationKey.PublicKey()
	if err != nil {
		panic(err) // a parsed K256 private key always has a public key
	}
	return pub.DIDKey()
}

// ---- handles ----

// validateHandle normalizes a requested handle for the account did: a handle on the service domains must meet
// their rules; any other domain must already resolve (DNS TXT or HTTPS well-known) to did. did == "" (a new
// account that brings no DID) allows only the service domains.
func (s *Server) validateHandle(ctx context.Context, raw, did string) (string, error) {
	h, err := syntax.ParseHandle(strings.TrimSpace(raw))
	if err != nil {
		return "", invalidHandle("Input/handle must be a valid handle")
	}
	h = h.Normalize()
	if s.cfg.IsServiceHandle(h.String()) {
		return s.normalizeServiceHandle(h.String())
	}
	if !h.AllowedTLD() {
		return "", invalidHandle("Handle TLD is invalid or disallowed")
	}
	if did == "" {
		return "", xrpc.NewError(http.StatusBadRequest, "UnsupportedDomain", "Not a supported handle domain")
	}
	resolved, err := s.resolveHandle(ctx, h, true)
	if err != nil || resolved.String() != did {
		if err != nil {
			s.log.Info("custom handle did not resolve", "handle", h, "did", did, "err", err)
		}
		return "", xrpc.InvalidRequest("External handle did not resolve to DID")
	}
	return h.String(), nil
}

// withHandle puts at://handle in place of the first at:// alias (or first, if there is none), keeping any
// other aliases, as the reference's PLC library does.
func withHandle(aka []string, handle string) []string {
	out := slices.Clone(aka)
	for i, a := range out {
		if strings.HasPrefix(a, "at://") {
			out[i] = "at://" + handle
			return out
		}
	}
	return append([]string{"at://" + handle}, out...)
}

// updateHandle changes an account's handle: the handle is checked (service-domain rules, or a custom domain that
// resolves to the account), the DID document is updated (a PLC operation signed with the server's rotation key
// for did:plc; a did:web document must already declare it), then the account store, then an #identity event.
// The admin API reuses it.
func (s *Server) updateHandle(ctx context.Context, acct *accountstore.Account, handle string) error {
	unlock := s.didLocks.lock(acct.DID)
	defer unlock()
	handle, err := s.validateHandle(ctx, handle, acct.DID)
	if err != nil {
		return err
	}
	if other, err := s.accounts.AccountByHandle(ctx, handle); err == nil && other.DID != acct.DID {
		return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
	} else if err != nil && !errors.Is(err, accountstore.ErrNotFound) {
		return err
	}
	if isPLC(acct.DID) {
		op, err := s.signedPLCUpdate(ctx, acct.DID, func(op *plc.Operation) {
			op.AlsoKnownAs = withHandle(op.AlsoKnownAs, handle)
		})
		if err != nil {
			return err
		}
		if err := s.plc.Submit(ctx, acct.DID, op); err != nil {
			return s.plcError(err)
		}
	} else {
		ident, err := s.resolveDIDDoc(ctx, syntax.DID(acct.DID), true)
		if err != nil {
			return xrpc.InvalidRequest("Could not resolve DID")
		}
		if declared, err := ident.DeclaredHandle(); err != nil || declared.String() != handle {
			return xrpc.InvalidRequest("DID is not properly configured for handle")
		}
	}
	// The PLC operation is not undone if this fails: the caller can repeat the request.
	if err := s.accounts.UpdateHandle(ctx, acct.DID, handle); err != nil {
		if errors.Is(err, accountstore.ErrHandleTaken) {
			return xrpc.NewError(http.StatusBadRequest, "HandleNotAvailable", "Handle already taken: %s", handle)
		}
		return err
	}
	s.forgetIdentity(ctx, acct.DID, acct.Handle, handle)
	acct.Handle = handle
	return <-s.seq.EnqueueIdentity(acct.DID, handle)
}

// handleIsCorrect reports whether the account's handle and DID point at each other right now (cached): the
// handle resolves to the DID (local for the service domains) and the DID document declares the handle.
func (s *Server) handleIsCorrect(ctx context.Context, acct *accountstore.Account) bool {
	h, err := syntax.ParseHandle(acct.Handle)
	if err != nil {
		return false
	}
	if !s.cfg.IsServiceHandle(acct.Handle) {
		did, err := s.resolveHandle(ctx, h, false)
		if err != nil || did.String() != acct.DID {
			return false
		}
	}
	ident, err := s.resolveDIDDoc(ctx, syntax.DID(acct.DID), false)
	if err != nil {
		return false
	}
	declared, err := ident.DeclaredHandle()
	return err == nil && declared == h.Normalize()
}

// ---- PLC ----

// signedPLCUpdate builds the operation that follows did's last one with mutate applied, checks its shape and
// signs it with the server's rotation key.
func (s *Server) signedPLCUpdate(ctx context.Context, did string, mutate func(*plc.Operation)) (*plc.Operation, error) {
	var op *plc.Operation
	last, err := s.plc.GetLastOp(ctx, did)
	switch {
	case err == nil:
		if op, err = last.Next(mutate); err != nil {
			return nil, err
		}
	case errors.Is(err, plc.ErrTombstoned):
		return nil, xrpc.InvalidRequest("DID is tombstoned")
	default:
		// The last operation may be one this package does not parse (the legacy "create" format): build the
		// next one from the current state and the log's last CID instead.
		data, derr := s.plc.GetDocumentData(ctx, did)
		if derr != nil {
			return nil, s.plcError(derr)
		}
		prev, derr := s.plc.LastCID(ctx, did)
		if derr != nil {
			return nil, s.plcError(derr)
		}
		op = plc.UpdateFrom(data, prev, mutate)
	}
	if err := op.Validate(); err != nil {
		return nil, xrpc.InvalidRequest("Invalid PLC operation: %s", strings.TrimPrefix(err.Error(), "plc: "))
	}
	if err := op.Sign(s.cfg.RotationKey); err != nil {
		return nil, err
	}
	return op, nil
}

// plcError turns a PLC directory failure into an XRPC error: a refusal (4xx) is the client's problem and carries
// the directory's message; anything else is an upstream failure (logged).
func (s *Server) plcError(err error) error {
	var pe *plc.Error
	if errors.As(err, &pe) && pe.StatusCode >= 400 && pe.StatusCode < 500 {
		return xrpc.InvalidRequest("The PLC directory refused the operation: %s", pe.Message)
	}
	s.log.Error("PLC directory request failed", "err", err)
	return xrpc.NewError(http.StatusBadGateway, "UpstreamFailure", "The PLC directory could not be reached")
}

// ---- status ----

// checkDIDDocument verifies that the account's DID document points at this server with the account's signing
// key (and, for did:plc, keeps the server's rotation key), as the reference requires before activation.
func (s *Server) checkDIDDocument(ctx context.Context, acct *accountstore.Account) error {
	want, err := signingDIDKey(acct)
	if err != nil {
		return err
	}
	var endpoint, key string
	if isPLC(acct.DID) {
		data, err := s.plc.GetDocumentData(ctx, acct.DID)
		if err != nil {
			if errors.Is(err, plc.ErrNotFound) {
				return xrpc.InvalidRequest("Could not resolve DID")
			}
			return s.plcError(err)
		}
		if !slices.Contains(data.RotationKeys, s.rotationDIDKey()) {
			return xrpc.InvalidRequest("Server rotation key not included in PLC DID data")
		}
		endpoint, key = data.PDSEndpoint(), data.SigningKey()
	} else {
		ident, err := s.resolveDIDDoc(ctx, syntax.DID(acct.DID), true)
		if err != nil {
			return xrpc.InvalidRequest("Could not resolve DID")
		}
		endpoint = ident.PDSEndpoint()
		if pub, err := ident.PublicKey(); err == nil {
			key = pub.DIDKey()
		}
	}
	if endpoint == "" || strings.TrimSuffix(endpoint, "/") != strings.TrimSuffix(s.cfg.PublicURL, "/") {
		return xrpc.InvalidRequest("DID document atproto_pds service endpoint does not match PDS public url")
	}
	if key != want {
		return xrpc.InvalidRequest("DID document verification method does not match expected signing key")
	}
	return nil
}

// activateAccount checks the DID document, marks the account active and announces it: #account (active),
// #identity, then #sync with the repo's current commit, as the reference.
func (s *Server) activateAccount(ctx context.Context, acct *accountstore.Account) error {
	unlock := s.didLocks.lock(acct.DID)
	defer unlock()
	if acct.TakedownRef != "" {
		return xrpc.NewError(http.StatusBadRequest, "AccountTakedown", "Account has been taken down")
	}
	if err := s.checkDIDDocument(ctx, acct); err != nil {
		return err
	}
	car, rev, err := s.writer.SyncEventBlocks(ctx, syntax.DID(acct.DID))
	if err != nil {
		return err
	}
	if err := s.accounts.SetDeactivated(ctx, acct.DID, nil, nil); err != nil {
		return err
	}
	acct.DeactivatedAt, acct.DeleteAfter = nil, nil
	s.seq.EnqueueAccount(acct.DID, true, "")
	s.seq.EnqueueIdentity(acct.DID, acct.Handle)
	return <-s.seq.EnqueueSync(acct.DID, rev, car) // the log stores in order: the earlier two are durable too
}

// deactivateAccount marks the account deactivated (deleteAfter, if set, is when the deletion job removes it)
// and emits #account.
func (s *Server) deactivateAccount(ctx context.Context, acct *accountstore.Account, deleteAfter *time.Time) error {
	unlock := s.didLocks.lock(acct.DID)
	defer unlock()
	now := time.Now()
	if err := s.accounts.SetDeactivated(ctx, acct.DID, &now, deleteAfter); err != nil {
		return err
	}
	acct.DeactivatedAt, acct.DeleteAfter = &now, deleteAfter
	status := statusDeactivated
	if acct.TakedownRef != "" {
		status = statusTakendown
	}
	return <-s.seq.EnqueueAccount(acct.DID, false, status)
}

// ---- deletion ----

// deleteAccount removes everything of an account and emits #account deleted. The admin API reuses it.
// accountstore.ErrNotFound if there is no such account.
func (s *Server) deleteAccount(ctx context.Context, did string) error {
	unlock := s.didLocks.lock(did)
	defer unlock()
	acct, err := s.accounts.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	return s.deleteAccountLocked(ctx, acct)
}

// deleteAccountLocked runs with the account's lock held. Order matters: the account row goes first (the source
// of truth: no login, write or read finds the account after it), then the repository (Delete waits for
// writes in flight, so no #commit can follow the deletion event), then the firehose is told and the log
// forgets the account's earlier events.
func (s *Server) deleteAccountLocked(ctx context.Context, acct *accountstore.Account) error {
	ctx = context.WithoutCancel(ctx) // half a deletion helps no one: finish even if the client goes away
	did := acct.DID
	// Refresh tokens, email tokens and app passwords go with the row (foreign keys, ON DELETE CASCADE).
	if err := s.accounts.DeleteAccount(ctx, did); err != nil {
		return err
	}
	var errs []error
	if err := s.repos.Delete(ctx, syntax.DID(did)); err != nil && !errors.Is(err, repo.ErrRepoNotFound) {
		s.log.Error("account deleted but its repository files could not be removed", "did", did, "err", err)
		errs = append(errs, err)
	}
	if err := s.blobs.DeleteAccountBlobs(ctx, did); err != nil {
		s.log.Error("account deleted but its blobs could not be removed", "did", did, "err", err)
		errs = append(errs, err)
	}
	if err := <-s.seq.EnqueueAccount(did, false, statusDeleted); err != nil {
		errs = append(errs, err)
	} else if err := s.seq.PurgeAccount(ctx, did); err != nil {
		errs = append(errs, err)
	}
	s.forgetIdentity(ctx, did, acct.Handle)
	return errors.Join(errs...)
}

// PurgeExpiredAccounts deletes deactivated accounts whose deleteAfter has passed and returns how many it
// deleted. The server runs it at start and every minute.
func (s *Server) PurgeExpiredAccounts(ctx context.Context) (int, error) {
	dids, err := s.accounts.AccountsDueForDeletion(ctx, time.Now(), 100)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, did := range dids {
		deleted, err := s.deleteIfDue(ctx, did)
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// deleteIfDue re-checks under the account's lock (it may have been reactivated meanwhile) and deletes.
func (s *Server) deleteIfDue(ctx context.Context, did string) (bool, error) {
	unlock := s.didLocks.lock(did)
	defer unlock()
	acct, err := s.accounts.AccountByDID(ctx, did)
	if errors.Is(err, accountstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if acct.DeactivatedAt == nil || acct.DeleteAfter == nil || acct.DeleteAfter.After(time.Now()) {
		return false, nil
	}
	s.log.Info("deleting deactivated account whose deleteAfter has passed", "did", did, "deleteAfter", acct.DeleteAfter)
	return true, s.deleteAccountLocked(ctx, acct)
}

// startAccountDeletionJob runs PurgeExpiredAccounts now and every deletionJobInterval until the server stops.
func (s *Server) startAccountDeletionJob() {
	s.bg.Go(func() {
		t := time.NewTicker(deletionJobInterval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), deletionJobInterval)
			if n, err := s.PurgeExpiredAccounts(ctx); err != nil {
				s.log.Error("account deletion job", "err", err, "deleted", n)
			}
			cancel()
			select {
			case <-s.bg.Quit():
				return
			case <-t.C:
			}
		}
	})
}
