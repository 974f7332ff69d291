package plc

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/ipfs/go-cid"
)

// Data is the current state of a DID as served by GET /{did}/data.
type Data struct {
	DID                 string             `json:"did"`
	RotationKeys        []string           `json:"rotationKeys"`
	VerificationMethods map[string]string  `json:"verificationMethods"`
	AlsoKnownAs         []string           `json:"alsoKnownAs"`
	Services            map[string]Service `json:"services"`
}

// Handle returns the first at:// alias without its scheme, or "".
func (d *Data) Handle() string { return firstHandle(d.AlsoKnownAs) }

// PDSEndpoint returns services.atproto_pds.endpoint, or "".
func (d *Data) PDSEndpoint() string { return d.Services[ServiceAtprotoPDS].Endpoint }

// SigningKey returns verificationMethods.atproto (a did:key), or "".
func (d *Data) SigningKey() string { return d.VerificationMethods[VerificationMethodAtproto] }

// Handle returns the first at:// alias of op without its scheme, or "".
func (op *Operation) Handle() string { return firstHandle(op.AlsoKnownAs) }

// PDSEndpoint returns services.atproto_pds.endpoint of op, or "".
func (op *Operation) PDSEndpoint() string { return op.Services[ServiceAtprotoPDS].Endpoint }

// SigningKey returns verificationMethods.atproto of op (a did:key), or "".
func (op *Operation) SigningKey() string { return op.VerificationMethods[VerificationMethodAtproto] }

func firstHandle(aka []string) string {
	for _, a := range aka {
		if h, ok := strings.CutPrefix(a, "at://"); ok && h != "" {
			return h
		}
	}
	return ""
}

// Validate checks the operation's shape against the did:plc spec before it
// is signed or submitted: type, 1..5 distinct rotation keys that parse as
// K256/P256 did:keys, at most 10 verification methods with did:key values,
// services with a type and an endpoint, and prev (if set) a valid CID. It
// does not check the signature (see VerifySignature).
func (op *Operation) Validate() error {
	if op.Type != TypeOperation {
		return fmt.Errorf("plc: operation type %q, want %q", op.Type, TypeOperation)
	}
	if n := len(op.RotationKeys); n < 1 || n > MaxRotationKeys {
		return fmt.Errorf("plc: %d rotation keys, want 1..%d", n, MaxRotationKeys)
	}
	seen := make(map[string]bool, len(op.RotationKeys))
	for _, k := range op.RotationKeys {
		if seen[k] {
			return fmt.Errorf("plc: duplicate rotation key %s", k)
		}
		seen[k] = true
		if _, err := atcrypto.ParsePublicDIDKey(k); err != nil {
			return fmt.Errorf("plc: rotation key %q: %w", k, err)
		}
	}
	if n := len(op.VerificationMethods); n > MaxVerificationMethods {
		return fmt.Errorf("plc: %d verification methods, at most %d", n, MaxVerificationMethods)
	}
	for id, k := range op.VerificationMethods {
		if id == "" || strings.HasPrefix(id, "#") {
			return fmt.Errorf("plc: verification method id %q", id)
		}
		if !strings.HasPrefix(k, "did:key:z") {
			return fmt.Errorf("plc: verification method %q: %q is not a did:key", id, k)
		}
	}
	for id, s := range op.Services {
		if id == "" || strings.HasPrefix(id, "#") {
			return fmt.Errorf("plc: service id %q", id)
		}
		if s.Type == "" || s.Endpoint == "" {
			return fmt.Errorf("plc: service %q needs a type and an endpoint", id)
		}
	}
	if op.Prev != nil {
		if _, err := cid.Decode(*op.Prev); err != nil {
			return fmt.Errorf("plc: prev %q is not a CID: %w", *op.Prev, err)
		}
	}
	return nil
}

// AtprotoExpect lists what a PDS requires of an account's PLC state (used
// when the PDS creates a DID and before it forwards a user-submitted
// operation). Empty fields are not checked.
type AtprotoExpect struct {
	// Handle expected as the first at:// alias (compared case-insensitively).
	Handle string
	// SigningKey: did:key expected at verificationMethods.atproto.
	SigningKey string
	// PDSEndpoint expected at services.atproto_pds.endpoint (with type
	// AtprotoPersonalDataServer); a trailing "/" is ignored.
	PDSEndpoint string
	// RotationKey: did:key that must be among the rotation keys (the PDS's
	// own rotation key).
	RotationKey string
}

// ErrAtprotoMismatch is wrapped by CheckAtproto errors.
var ErrAtprotoMismatch = errors.New("plc: operation does not match the account")

// CheckAtproto verifies the atproto fields of op against exp.
func (op *Operation) CheckAtproto(exp AtprotoExpect) error {
	return checkAtproto(op.Data(""), exp)
}

// CheckAtproto verifies the atproto fields of d against exp.
func (d *Data) CheckAtproto(exp AtprotoExpect) error { return checkAtproto(d, exp) }

func checkAtproto(d *Data, exp AtprotoExpect) error {
	if exp.Handle != "" && !strings.EqualFold(d.Handle(), exp.Handle) {
		return fmt.Errorf("%w: handle is %q, want %q", ErrAtprotoMismatch, d.Handle(), exp.Handle)
	}
	if exp.SigningKey != "" && d.SigningKey() != exp.SigningKey {
		return fmt.Errorf("%w: verificationMethods.atproto is %q, want %q", ErrAtprotoMismatch, d.SigningKey(), exp.SigningKey)
	}
	if exp.PDSEndpoint != "" {
		s, ok := d.Services[ServiceAtprotoPDS]
		if !ok {
			return fmt.Errorf("%w: no services.atproto_pds", ErrAtprotoMismatch)
		}
		if s.Type != ServiceTypeAtprotoPDS {
			return fmt.Errorf("%w: services.atproto_pds type is %q, want %q", ErrAtprotoMismatch, s.Type, ServiceTypeAtprotoPDS)
		}
		if !sameEndpoint(s.Endpoint, exp.PDSEndpoint) {
			return fmt.Errorf("%w: services.atproto_pds endpoint is %q, want %q", ErrAtprotoMismatch, s.Endpoint, exp.PDSEndpoint)
		}
	}
	if exp.RotationKey != "" {
		found := false
		for _, k := range d.RotationKeys {
			if k == exp.RotationKey {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: rotation keys do not include %s", ErrAtprotoMismatch, exp.RotationKey)
		}
	}
	return nil
}

func sameEndpoint(a, b string) bool {
	a, b = strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/")
	if a == b {
		return true
	}
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) && ua.Path == ub.Path
}
