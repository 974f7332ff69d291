// Package identity holds the PDS's DID and handle helpers on top of indigo's
// atproto/identity (resolution, caching) and our identity/plc (PLC
// operations and the PLC directory client).
//
// Resolution itself is indigo's: use atproto/identity.BaseDirectory with
// PLCURL set (no trailing slash) and an HTTP client with a timeout, wrapped
// in NewCacheDirectory. This package only adds checks of a resolved DID
// document against what the PDS expects of an account it hosts.
package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	atid "github.com/bluesky-social/indigo/atproto/identity"
)

// Expect is what the PDS requires of the DID document of an account it
// hosts. Empty fields are not checked.
type Expect struct {
	// DID the document must be for.
	DID string
	// Handle the document must declare (first valid at:// alias,
	// compared case-insensitively).
	Handle string
	// SigningKey: did:key expected as the #atproto verification method.
	SigningKey string
	// PDSEndpoint expected as the #atproto_pds service
	// (AtprotoPersonalDataServer); a trailing "/" is ignored.
	PDSEndpoint string
}

// ErrDocumentMismatch is wrapped by CheckDocument errors about content
// (as opposed to JSON errors).
var ErrDocumentMismatch = errors.New("identity: DID document does not match the account")

// ParseDocument decodes a DID document (for instance plc.Client.ResolveDocument's
// answer) into indigo's Identity (keys and services by fragment).
func ParseDocument(raw json.RawMessage) (*atid.Identity, error) {
	var doc atid.DIDDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("identity: decode DID document: %w", err)
	}
	id := atid.ParseIdentity(&doc)
	return &id, nil
}

// CheckDocument verifies a DID document against exp: id, declared handle,
// #atproto verification method (as a did:key) and #atproto_pds service
// (type AtprotoPersonalDataServer and endpoint).
func CheckDocument(raw json.RawMessage, exp Expect) error {
	id, err := ParseDocument(raw)
	if err != nil {
		return err
	}
	return CheckIdentity(id, exp)
}

// CheckIdentity is CheckDocument for an already parsed identity.
func CheckIdentity(id *atid.Identity, exp Expect) error {
	if exp.DID != "" && id.DID.String() != exp.DID {
		return fmt.Errorf("%w: id is %q, want %q", ErrDocumentMismatch, id.DID, exp.DID)
	}
	if exp.Handle != "" {
		h, err := id.DeclaredHandle()
		if err != nil {
			return fmt.Errorf("%w: no valid at:// handle in alsoKnownAs", ErrDocumentMismatch)
		}
		if !strings.EqualFold(h.String(), exp.Handle) {
			return fmt.Errorf("%w: handle is %q, want %q", ErrDocumentMismatch, h, exp.Handle)
		}
	}
	if exp.SigningKey != "" {
		pub, err := id.PublicKey()
		if err != nil {
			return fmt.Errorf("%w: #atproto verification method: %v", ErrDocumentMismatch, err)
		}
		if pub.DIDKey() != exp.SigningKey {
			return fmt.Errorf("%w: #atproto key is %s, want %s", ErrDocumentMismatch, pub.DIDKey(), exp.SigningKey)
		}
	}
	if exp.PDSEndpoint != "" {
		svc, ok := id.Services["atproto_pds"]
		if !ok {
			return fmt.Errorf("%w: no #atproto_pds service", ErrDocumentMismatch)
		}
		if svc.Type != "AtprotoPersonalDataServer" {
			return fmt.Errorf("%w: #atproto_pds type is %q, want AtprotoPersonalDataServer", ErrDocumentMismatch, svc.Type)
		}
		if strings.TrimSuffix(svc.URL, "/") != strings.TrimSuffix(exp.PDSEndpoint, "/") {
			return fmt.Errorf("%w: #atproto_pds endpoint is %q, want %q", ErrDocumentMismatch, svc.URL, exp.PDSEndpoint)
		}
	}
	return nil
}
