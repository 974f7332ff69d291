package accounts

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// reservedHandles are first labels no one may register on the service domains (a short list of the names the
// reference reserves: service, infrastructure and impersonation-prone words).
var reservedHandles = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`about abuse access account accounts admin administrator alpha api app apps atproto
		auth beta billing blog bluesky bsky cdn chat config contact copyright dashboard dev developer developers
		did dns docs download email feed feeds ftp help host hostmaster imap info invite jobs legal login logout
		mail mailer moderation moderator mod news noc oauth official pds plc policy postmaster privacy relay
		root security service services settings signin signup smtp staff status support sync system team terms
		test tos update webmaster www xrpc`) {
		reservedHandles[w] = true
	}
}

// normalizeServiceHandle checks a handle requested on this server's handle domains and returns it lower-cased.
func (s *Service) normalizeServiceHandle(raw string) (string, error) {
	h, err := syntax.ParseHandle(strings.TrimSpace(raw))
	if err != nil {
		return "", xrpcerr.InvalidHandle("Input/handle must be a valid handle")
	}
	handle := h.Normalize().String()
	for _, tld := range []string{".local", ".arpa", ".invalid", ".localhost", ".internal", ".example", ".alt", ".onion"} {
		if strings.HasSuffix(handle, tld) {
			return "", xrpcerr.InvalidHandle("Handle TLD is invalid or disallowed")
		}
	}
	for _, domain := range s.cfg.ServiceHandleDomains {
		if !strings.HasSuffix(handle, domain) {
			continue
		}
		front := strings.TrimSuffix(handle, domain)
		switch {
		case strings.Contains(front, "."):
			return "", xrpcerr.InvalidHandle("Invalid characters in handle")
		case len(front) < 3:
			return "", xrpcerr.InvalidHandle("Handle too short")
		case len(front) > 18:
			return "", xrpcerr.InvalidHandle("Handle too long")
		case reservedHandles[front]:
			// The reference names this one HandleNotAvailable (its other rules are InvalidHandle).
			return "", xrpc.HandleNotAvailable("Reserved handle")
		}
		return handle, nil
	}
	return "", xrpcerr.InvalidHandle("Handle must use one of this server's domains: " + strings.Join(s.cfg.ServiceHandleDomains, ", "))
}

// validateHandle normalizes a requested handle for the account did: a handle on the service domains must meet
// their rules; any other domain must already resolve (DNS TXT or HTTPS well-known) to did. did == "" (a new
// account that brings no DID) allows only the service domains.
func (s *Service) validateHandle(ctx context.Context, raw string, did syntax.DID) (string, error) {
	h, err := syntax.ParseHandle(strings.TrimSpace(raw))
	if err != nil {
		return "", xrpcerr.InvalidHandle("Input/handle must be a valid handle")
	}
	h = h.Normalize()
	if s.isServiceHandle(h.String()) {
		return s.normalizeServiceHandle(h.String())
	}
	if !h.AllowedTLD() {
		return "", xrpcerr.InvalidHandle("Handle TLD is invalid or disallowed")
	}
	if did == "" {
		return "", xrpc.NewError(http.StatusBadRequest, xrpc.NameUnsupportedDomain, "Not a supported handle domain")
	}
	resolved, err := s.ResolveHandle(ctx, h, true)
	if err != nil || resolved != did {
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

// UpdateHandle changes an account's handle: the handle is checked (service-domain rules, or a custom domain that
// resolves to the account), the DID document is updated (a PLC operation signed with the server's rotation key
// for did:plc; a did:web document must already declare it), then the account store, then an #identity event.
// The admin API reuses it.
func (s *Service) ChangeHandle(ctx context.Context, acct *accountstore.Account, handle string) error {
	unlock := s.locks.Lock(acct.DID)
	defer unlock()
	handle, err := s.validateHandle(ctx, handle, acct.DID)
	if err != nil {
		return err
	}
	if other, err := s.Store.AccountByHandle(ctx, handle); err == nil && other.DID != acct.DID {
		return xrpcerr.HandleTaken(handle)
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
		if err := s.d.PLC.Submit(ctx, acct.DID.String(), op); err != nil {
			return xrpcerr.PLC(err, s.log)
		}
	} else {
		ident, err := s.ResolveDIDDoc(ctx, acct.DID, true)
		if err != nil {
			return xrpc.InvalidRequest("Could not resolve DID")
		}
		if declared, err := ident.DeclaredHandle(); err != nil || declared.String() != handle {
			return xrpc.InvalidRequest("DID is not properly configured for handle")
		}
	}
	// The PLC operation is not undone if this fails: the caller can repeat the request.
	if err := s.Store.UpdateHandle(ctx, acct.DID, handle); err != nil {
		return xrpcerr.Handle(err, handle)
	}
	s.forgetIdentity(ctx, acct.DID, acct.Handle, handle)
	acct.Handle = handle
	return <-s.d.Seq.EnqueueIdentity(acct.DID, handle)
}

// HandleIsCorrect reports whether the account's handle and DID point at each other right now (cached): the
// handle resolves to the DID (local for the service domains) and the DID document declares the handle.
func (s *Service) HandleIsCorrect(ctx context.Context, acct *accountstore.Account) bool {
	h, err := syntax.ParseHandle(acct.Handle)
	if err != nil {
		return false
	}
	if !s.isServiceHandle(acct.Handle) {
		did, err := s.ResolveHandle(ctx, h, false)
		if err != nil || did != acct.DID {
			return false
		}
	}
	ident, err := s.ResolveDIDDoc(ctx, acct.DID, false)
	if err != nil {
		return false
	}
	declared, err := ident.DeclaredHandle()
	return err == nil && declared == h.Normalize()
}

// isServiceHandle reports whether handle is under one of the service handle domains.
func (s *Service) isServiceHandle(handle string) bool {
	for _, d := range s.cfg.ServiceHandleDomains {
		if strings.HasSuffix(handle, d) {
			return true
		}
	}
	return false
}
