package accounts

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

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

// Activate checks the DID document, marks the account active and announces it: #account (active),
// #identity, then #sync with the repo's current commit, as the reference.
func (s *Service) Activate(ctx context.Context, acct *accountstore.Account) error {
	unlock := s.locks.Lock(acct.DID)
	defer unlock()
	if acct.TakedownRef != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountTakedown, "Account has been taken down")
	}
	if err := s.CheckDIDDocument(ctx, acct); err != nil {
		return err
	}
	car, rev, err := s.d.Writer.SyncEventBlocks(ctx, acct.DID)
	if err != nil {
		return err
	}
	if err := s.Store.SetDeactivated(ctx, acct.DID, nil, nil); err != nil {
		return err
	}
	acct.DeactivatedAt, acct.DeleteAfter = nil, nil
	s.d.Seq.EnqueueAccount(acct.DID, true, "")
	s.d.Seq.EnqueueIdentity(acct.DID, acct.Handle)
	return <-s.d.Seq.EnqueueSync(acct.DID, rev, car) // the log stores in order: the earlier two are durable too
}

// Deactivate marks the account deactivated (deleteAfter, if set, is when the deletion job removes it)
// and emits #account.
func (s *Service) Deactivate(ctx context.Context, acct *accountstore.Account, deleteAfter *time.Time) error {
	unlock := s.locks.Lock(acct.DID)
	defer unlock()
	now := time.Now()
	if err := s.Store.SetDeactivated(ctx, acct.DID, &now, deleteAfter); err != nil {
		return err
	}
	acct.DeactivatedAt, acct.DeleteAfter = &now, deleteAfter
	if err := s.endSessions(ctx, acct.DID); err != nil {
		return err
	}
	status := statusDeactivated
	if acct.TakedownRef != "" {
		status = statusTakendown
	}
	return <-s.d.Seq.EnqueueAccount(acct.DID, false, status)
}

// ---- deletion ----

// Delete removes everything of an account and emits #account deleted. The admin API reuses it.
// accountstore.ErrNotFound if there is no such account.
func (s *Service) Delete(ctx context.Context, did syntax.DID) error {
	unlock := s.locks.Lock(did)
	defer unlock()
	acct, err := s.Store.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	return s.deleteLocked(ctx, acct)
}

// deleteLocked runs with the account's lock held. Order matters: the account row goes first (the source
// of truth: no login, write or read finds the account after it), then the repository (Delete waits for
// writes in flight, so no #commit can follow the deletion event), then the firehose is told and the log
// forgets the account's earlier events.
func (s *Service) deleteLocked(ctx context.Context, acct *accountstore.Account) error {
	ctx = context.WithoutCancel(ctx) // half a deletion helps no one: finish even if the client goes away
	did := acct.DID
	// Refresh tokens, email tokens and app passwords go with the row (foreign keys, ON DELETE CASCADE).
	if err := s.Store.DeleteAccount(ctx, did); err != nil {
		return err
	}
	if s.d.Metrics != nil {
		s.d.Metrics.AccountDeleted()
	}
	var errs []error
	if err := s.endSessions(ctx, did); err != nil {
		errs = append(errs, err)
	}
	if err := s.d.Repos.Delete(ctx, did); err != nil && !errors.Is(err, repo.ErrRepoNotFound) {
		s.log.Error("account deleted but its repository files could not be removed", "did", did, "err", err)
		errs = append(errs, err)
	}
	if err := s.d.Blobs.DeleteAccountBlobs(ctx, did); err != nil {
		s.log.Error("account deleted but its blobs could not be removed", "did", did, "err", err)
		errs = append(errs, err)
	}
	if err := <-s.d.Seq.EnqueueAccount(did, false, statusDeleted); err != nil {
		errs = append(errs, err)
	} else if err := s.d.Seq.PurgeAccount(ctx, did); err != nil {
		errs = append(errs, err)
	}
	s.forgetIdentity(ctx, did, acct.Handle)
	return errors.Join(errs...)
}

// PurgeExpired deletes deactivated accounts whose deleteAfter has passed and returns how many it
// deleted. The server runs it at start and every minute.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	dids, err := s.Store.AccountsDueForDeletion(ctx, time.Now(), 100)
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
func (s *Service) deleteIfDue(ctx context.Context, did syntax.DID) (bool, error) {
	unlock := s.locks.Lock(did)
	defer unlock()
	acct, err := s.Store.AccountByDID(ctx, did)
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
	return true, s.deleteLocked(ctx, acct)
}

// RunDeletionJob runs PurgeExpired now and every deletionJobInterval until quit is closed.
func (s *Service) RunDeletionJob(quit <-chan struct{}) {
	t := time.NewTicker(deletionJobInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), deletionJobInterval)
		if n, err := s.PurgeExpired(ctx); err != nil {
			s.log.Error("account deletion job", "err", err, "deleted", n)
		}
		cancel()
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}
