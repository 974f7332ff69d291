package accounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// takedownCache mirrors the (few) taken-down accounts and records in memory, so the checks on every
// authenticated request and every record read cost no query. The account store stays the source of truth: the
// cache is loaded from it on first use and updated after each committed change.
type takedownCache struct {
	mu       sync.RWMutex
	loaded   bool
	accounts map[syntax.DID]bool
	records  map[string]string  // at-uri -> takedown ref
	perDID   map[syntax.DID]int // record takedowns per account: most reads skip the map lookup
}

func (t *takedownCache) ensure(ctx context.Context, store *accountstore.Store) error {
	t.mu.RLock()
	loaded := t.loaded
	t.mu.RUnlock()
	if loaded {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loaded {
		return nil
	}
	dids, err := store.TakendownAccounts(ctx)
	if err != nil {
		return err
	}
	recs, err := store.RecordTakedowns(ctx)
	if err != nil {
		return err
	}
	t.accounts = map[syntax.DID]bool{}
	for _, d := range dids {
		t.accounts[d] = true
	}
	t.records, t.perDID = map[string]string{}, map[syntax.DID]int{}
	for _, r := range recs {
		t.records[r.URI] = r.Ref
		t.perDID[r.DID]++
	}
	t.loaded = true
	return nil
}

func (t *takedownCache) setAccount(did syntax.DID, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		return // loaded from the store on first use, which has the change
	}
	if down {
		t.accounts[did] = true
	} else {
		delete(t.accounts, did)
	}
}

func (t *takedownCache) setRecord(did syntax.DID, uri, ref string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		return
	}
	_, had := t.records[uri]
	switch {
	case ref != "" && !had:
		t.perDID[did]++
	case ref == "" && had:
		if t.perDID[did]--; t.perDID[did] <= 0 {
			delete(t.perDID, did)
		}
	}
	if ref != "" {
		t.records[uri] = ref
	} else {
		delete(t.records, uri)
	}
}

// AccountTakendown reports whether did is taken down.
func (s *Service) AccountTakendown(ctx context.Context, did syntax.DID) (bool, error) {
	if err := s.takedowns.ensure(ctx, s.Store); err != nil {
		return false, err
	}
	s.takedowns.mu.RLock()
	defer s.takedowns.mu.RUnlock()
	return s.takedowns.accounts[did], nil
}

// RecordTakedownRef returns the takedown ref of a record ("" when it is visible).
func (s *Service) RecordTakedownRef(ctx context.Context, did syntax.DID, uri string) (string, error) {
	if err := s.takedowns.ensure(ctx, s.Store); err != nil {
		return "", err
	}
	s.takedowns.mu.RLock()
	defer s.takedowns.mu.RUnlock()
	if s.takedowns.perDID[did] == 0 {
		return "", nil
	}
	return s.takedowns.records[uri], nil
}

// HiddenRecords returns a filter for an account's record reads: true for a taken-down record (nil when the
// account has none, the usual case).
func (s *Service) HiddenRecords(ctx context.Context, did syntax.DID) (func(uri string) bool, error) {
	if err := s.takedowns.ensure(ctx, s.Store); err != nil {
		return nil, err
	}
	s.takedowns.mu.RLock()
	n := s.takedowns.perDID[did]
	s.takedowns.mu.RUnlock()
	if n == 0 {
		return nil, nil
	}
	return func(uri string) bool {
		s.takedowns.mu.RLock()
		defer s.takedowns.mu.RUnlock()
		return s.takedowns.records[uri] != ""
	}, nil
}

// TakeDownAccount takes an account down (ref != "") or restores it (ref == ""): the store revokes its
// sessions, sync reads and logins see the new state, and the firehose gets #account with the resulting status.
func (s *Service) TakeDownAccount(ctx context.Context, did syntax.DID, ref string) error {
	unlock := s.locks.Lock(did)
	defer unlock()
	if err := s.takedowns.ensure(ctx, s.Store); err != nil {
		return err
	}
	if err := s.SetAccountTakedown(ctx, did, ref); err != nil {
		return err
	}
	s.takedowns.setAccount(did, ref != "")
	if ref != "" {
		if err := s.endSessions(ctx, did); err != nil {
			return err
		}
	}
	acct, err := s.Store.AccountByDID(ctx, did)
	if err != nil {
		return err
	}
	return <-s.d.Seq.EnqueueAccount(did, acct.Active(), acct.Status())
}

// TakeDownRecord hides a record from record reads (getRecord, listRecords, sync.getRecord) or shows it again.
func (s *Service) TakeDownRecord(ctx context.Context, did syntax.DID, uri, cid, ref string) error {
	if err := s.takedowns.ensure(ctx, s.Store); err != nil {
		return err
	}
	if err := s.Store.SetRecordTakedown(ctx, did, uri, cid, ref); err != nil {
		return err
	}
	s.takedowns.setRecord(did, uri, ref)
	return nil
}

// TakeDownBlob records a blob takedown (ref != "") or lifts it (ref == "") and moves the blob's bytes into
// quarantine or back (a blob not uploaded yet is only recorded: getBlob and record writes check the record).
func (s *Service) TakeDownBlob(ctx context.Context, did syntax.DID, blobCID, ref string) error {
	c, err := cid.Decode(blobCID)
	if err != nil {
		return xrpc.InvalidRequest("Invalid blob cid")
	}
	if err := s.Store.SetBlobTakedown(ctx, did, c.String(), ref); err != nil {
		return err
	}
	return s.d.Blobs.SetQuarantine(ctx, did, c, ref != "")
}

// BlobTakendown reports whether a blob is taken down (getBlob refuses it).
func (s *Service) BlobTakendown(ctx context.Context, did syntax.DID, cid string) (bool, error) {
	_, err := s.Store.BlobTakedown(ctx, did, cid)
	if errors.Is(err, accountstore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// TakedownRef is the ref stored for an applied takedown without one (the reference uses the time).
func TakedownRef(applied bool, ref string) string {
	if !applied {
		return ""
	}
	if strings.TrimSpace(ref) == "" {
		return time.Now().UTC().Format(time.RFC3339Nano)
	}
	return ref
}
