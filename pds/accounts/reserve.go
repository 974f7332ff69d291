package accounts

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// ReservedKeyTTL is how long a reserved signing key waits for its account. The reference keeps reservations
// until an account takes them; an unauthenticated method that stores a key per call needs a bound here, and a
// day is ample to build and sign the PLC operation that names the key.
const ReservedKeyTTL = 24 * time.Hour

// ReserveSigningKey reserves a new repo signing key (reserveSigningKey) for did, or unbound when did is "",
// and returns it as a did:key. A DID with a live reservation gets the same key again. The private key never
// leaves the server: an account created with a plcOp naming the key (CreateWithPLCOp), or created for did
// (CreateWithDID), signs its repository with it.
func (s *Service) ReserveSigningKey(ctx context.Context, did syntax.DID) (string, error) {
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		return "", err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return "", err
	}
	now := time.Now()
	k, err := s.Store.ReserveSigningKey(ctx, accountstore.ReservedKey{
		KeyDID: pub.DIDKey(), DID: did, PrivateKey: key.Bytes(), CreatedAt: now, ExpiresAt: now.Add(ReservedKeyTTL),
	})
	if err != nil {
		return "", err
	}
	return k.KeyDID, nil
}

func (s *Service) clearReservation(ctx context.Context, keyDID string, did syntax.DID) {
	if err := s.Store.ClearReservedSigningKey(context.WithoutCancel(ctx), keyDID, did); err != nil {
		s.log.Warn("could not clear a used signing key reservation (it expires)", "did", did, "err", err)
	}
}

func incompatibleDIDDoc(format string, args ...any) error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameIncompatibleDidDoc, format, args...)
}

// CreateWithPLCOp creates an account for the did:plc did with op, a signed PLC operation the client made
// (createAccount with did and plcOp, the reference's entryway flow): op must be the DID's genesis operation
// or follow its last one, be signed by one of its rotation keys, keep this server's rotation key, and point
// at this server with the handle and a signing key reserved here (reserveSigningKey, for the DID or unbound).
// The account is written with that key, then the operation goes to the PLC directory (a refusal undoes the
// account). A new DID (genesis) is active at once, with the creation events; an existing DID's account starts
// deactivated, as for a migration (its repository is imported, then activateAccount).
func (s *Service) CreateWithPLCOp(ctx context.Context, did syntax.DID, in NewAccount, op *plc.Operation) (*accountstore.Account, error) {
	if did.Method() != "plc" || !plc.ValidDID(did.String()) {
		return nil, xrpc.InvalidRequest("plcOp is only for a did:plc")
	}
	if op.Validate() != nil || op.Sig == "" {
		return nil, incompatibleDIDDoc("invalid plc operation")
	}
	if op.CheckAtproto(plc.AtprotoExpect{RotationKey: s.RotationDIDKey()}) != nil {
		return nil, incompatibleDIDDoc("PLC DID does not include service rotation key")
	}
	if err := s.checkOpFollows(ctx, did, op); err != nil {
		return nil, err
	}
	handle, err := s.validateHandle(ctx, in.Handle, did)
	if err != nil {
		return nil, err
	}
	reserved, err := s.Store.ReservedSigningKey(ctx, did, op.SigningKey())
	if errors.Is(err, accountstore.ErrNotFound) {
		return nil, xrpc.InvalidRequest("reserved signing key does not exist")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case !strings.EqualFold(op.Handle(), handle):
		return nil, incompatibleDIDDoc("provided handle does not match DID document handle")
	case op.CheckAtproto(plc.AtprotoExpect{PDSEndpoint: s.cfg.PublicURL}) != nil:
		return nil, incompatibleDIDDoc("DID document pds endpoint does not match service endpoint")
	case op.SigningKey() != reserved.KeyDID:
		return nil, incompatibleDIDDoc("DID document signing key does not match service signing key")
	}
	signingKey, err := atcrypto.ParsePrivateBytesK256(reserved.PrivateKey)
	if err != nil {
		return nil, err
	}
	if err := s.checkAvailable(ctx, did, handle, in.Email); err != nil {
		return nil, err
	}
	if in.InviteCode != "" {
		if err := s.InviteCodeAvailable(ctx, in.InviteCode); err != nil {
			return nil, xrpcerr.InviteCodeUnavailable()
		}
	}
	acct, undo, err := s.createDeactivated(ctx, did, handle, in, signingKey)
	if err != nil {
		return nil, err
	}
	if err := s.d.PLC.Submit(ctx, did.String(), op); err != nil {
		undo()
		return nil, xrpcerr.PLC(err, s.log)
	}
	s.clearReservation(ctx, reserved.KeyDID, did)
	s.forgetIdentity(ctx, did)
	if op.IsGenesis() {
		// The account exists and the DID points here: a failed activation leaves it deactivated (the user can
		// call activateAccount) rather than failing a createAccount that cannot be repeated.
		if err := s.Activate(ctx, acct); err != nil {
			s.log.Warn("createAccount with a genesis plcOp: activation failed", "did", did, "err", err)
		}
	}
	return acct, nil
}

// checkOpFollows checks op against the DID's log before anything is written: a genesis operation must be the
// one the DID is derived from (and the DID new), an update must follow the DID's last operation and be signed
// by one of its current rotation keys. The directory checks again when the operation is submitted.
func (s *Service) checkOpFollows(ctx context.Context, did syntax.DID, op *plc.Operation) error {
	if op.IsGenesis() {
		derived, err := op.DID()
		if err != nil || derived != did.String() || op.VerifySignature(op.RotationKeys) != nil {
			return incompatibleDIDDoc("invalid plc operation")
		}
		return nil
	}
	data, err := s.d.PLC.GetDocumentData(ctx, did.String())
	switch {
	case errors.Is(err, plc.ErrNotFound):
		return xrpc.InvalidRequest("Could not resolve DID: %s", did)
	case errors.Is(err, plc.ErrTombstoned):
		return xrpc.InvalidRequest("DID is tombstoned")
	case err != nil:
		return xrpcerr.PLC(err, s.log)
	}
	last, err := s.d.PLC.LastCID(ctx, did.String())
	if err != nil {
		return xrpcerr.PLC(err, s.log)
	}
	if *op.Prev != last {
		return incompatibleDIDDoc("invalid plc operation: prev is not the DID's last operation")
	}
	if op.VerifySignature(data.RotationKeys) != nil {
		return incompatibleDIDDoc("invalid plc operation: not signed by a rotation key of the DID")
	}
	return nil
}
