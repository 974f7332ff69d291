package accounts

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/xrpc"
)

// isPLC reports whether did is a did:plc.
func isPLC(did syntax.DID) bool { return did.Method() == "plc" }

// SigningDIDKey is the did:key of the account's repo signing key.
func SigningDIDKey(acct *accountstore.Account) (string, error) {
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

// RotationDIDKey is the did:key of the server's PLC rotation key.
func (s *Service) RotationDIDKey() string {
	pub, err := s.cfg.RotationKey.PublicKey()
	if err != nil {
		panic(err) // a parsed K256 private key always has a public key
	}
	return pub.DIDKey()
}

// signedPLCUpdate builds the operation that follows did's last one with mutate applied, checks its shape and
// signs it with the server's rotation key.
func (s *Service) signedPLCUpdate(ctx context.Context, did syntax.DID, mutate func(*plc.Operation)) (*plc.Operation, error) {
	var op *plc.Operation
	last, err := s.d.PLC.GetLastOp(ctx, did.String())
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
		data, derr := s.d.PLC.GetDocumentData(ctx, did.String())
		if derr != nil {
			return nil, xrpcerr.PLC(derr, s.log)
		}
		prev, derr := s.d.PLC.LastCID(ctx, did.String())
		if derr != nil {
			return nil, xrpcerr.PLC(derr, s.log)
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

// CheckDIDDocument verifies that the account's DID document points at this server with the account's signing
// key (and, for did:plc, keeps the server's rotation key), as the reference requires before activation.
func (s *Service) CheckDIDDocument(ctx context.Context, acct *accountstore.Account) error {
	want, err := SigningDIDKey(acct)
	if err != nil {
		return err
	}
	var endpoint, key string
	if isPLC(acct.DID) {
		data, err := s.d.PLC.GetDocumentData(ctx, acct.DID.String())
		if err != nil {
			if errors.Is(err, plc.ErrNotFound) {
				return xrpc.InvalidRequest("Could not resolve DID")
			}
			return xrpcerr.PLC(err, s.log)
		}
		if !slices.Contains(data.RotationKeys, s.RotationDIDKey()) {
			return xrpc.InvalidRequest("Server rotation key not included in PLC DID data")
		}
		endpoint, key = data.PDSEndpoint(), data.SigningKey()
	} else {
		ident, err := s.ResolveDIDDoc(ctx, acct.DID, true)
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

// CurrentSigningKey resolves the account's DID document afresh (no cache): the key that signs its repository
// according to the document as it is now.
func (s *Service) CurrentSigningKey(ctx context.Context, did syntax.DID) (atcrypto.PublicKey, error) {
	var key string
	if isPLC(did) {
		data, err := s.d.PLC.GetDocumentData(ctx, did.String())
		if errors.Is(err, plc.ErrNotFound) || errors.Is(err, plc.ErrTombstoned) {
			return nil, xrpc.InvalidRequest("Could not resolve DID: %s", did)
		}
		if err != nil {
			return nil, xrpcerr.PLC(err, s.log)
		}
		key = data.SigningKey()
	} else {
		ident, err := s.ResolveDIDDoc(ctx, did, true)
		if err != nil {
			return nil, xrpc.InvalidRequest("Could not resolve DID: %s", did)
		}
		pub, err := ident.PublicKey()
		if err != nil {
			return nil, xrpc.InvalidRequest("The DID document of %s has no atproto signing key", did)
		}
		return pub, nil
	}
	pub, err := atcrypto.ParsePublicDIDKey(key)
	if err != nil {
		return nil, xrpc.InvalidRequest("The DID document of %s has no valid atproto signing key", did)
	}
	return pub, nil
}

// SubmitPLCOperation submits an operation the user had signed for acct (submitPlcOperation) after the
// reference's checks that it keeps this server able to manage and serve the account, and announces #identity.
func (s *Service) SubmitPLCOperation(ctx context.Context, acct *accountstore.Account, op *plc.Operation) error {
	signing, err := SigningDIDKey(acct)
	if err != nil {
		return err
	}
	if op.CheckAtproto(plc.AtprotoExpect{RotationKey: s.RotationDIDKey()}) != nil {
		return xrpc.InvalidRequest("Rotation keys do not include server's rotation key")
	}
	if op.Services[plc.ServiceAtprotoPDS].Type != plc.ServiceTypeAtprotoPDS {
		return xrpc.InvalidRequest("Incorrect type on atproto_pds service")
	}
	if op.CheckAtproto(plc.AtprotoExpect{PDSEndpoint: s.cfg.PublicURL}) != nil {
		return xrpc.InvalidRequest("Incorrect endpoint on atproto_pds service")
	}
	if op.CheckAtproto(plc.AtprotoExpect{SigningKey: signing}) != nil {
		return xrpc.InvalidRequest("Incorrect signing key")
	}
	if acct.Handle != "" && (len(op.AlsoKnownAs) == 0 || op.AlsoKnownAs[0] != "at://"+acct.Handle) {
		return xrpc.InvalidRequest("Incorrect handle in alsoKnownAs")
	}
	unlock := s.locks.Lock(acct.DID)
	defer unlock()
	if err := s.d.PLC.Submit(ctx, acct.DID.String(), op); err != nil {
		return xrpcerr.PLC(err, s.log)
	}
	s.forgetIdentity(ctx, acct.DID)
	return <-s.d.Seq.EnqueueIdentity(acct.DID, acct.Handle)
}

// SignPLCOperation signs, with the server's rotation key, the operation that follows the account's last one
// with mutate applied (signPlcOperation). token is the PLC-operation email token: checked first, used up only
// once the operation is signed, so a malformed request does not burn it.
func (s *Service) SignPLCOperation(ctx context.Context, acct *accountstore.Account, token string, mutate func(*plc.Operation)) (*plc.Operation, error) {
	if token == "" {
		return nil, xrpc.InvalidRequest("email confirmation token required to sign PLC operations")
	}
	if err := s.CheckEmailToken(ctx, acct.DID, accountstore.PurposePLCOperation, token); err != nil {
		return nil, xrpcerr.EmailToken(err)
	}
	op, err := s.signedPLCUpdate(ctx, acct.DID, mutate)
	if err != nil {
		return nil, err
	}
	if err := s.ConsumeEmailToken(ctx, acct.DID, accountstore.PurposePLCOperation, token); err != nil {
		return nil, xrpcerr.EmailToken(err) // used concurrently
	}
	return op, nil
}
