// Package plc builds, signs and verifies did:plc operations and talks to a
// PLC directory (https://web.plc.directory/spec/v0.1/did-plc).
//
// Hashes and signatures are always computed over DAG-CBOR (atdata.MarshalCBOR
// of a plain map, which gives canonical key order), never over JSON:
//
//   - unsigned bytes: DAG-CBOR of the operation without "sig";
//   - sig: base64url (no padding) of key.HashAndSign(unsigned bytes), a
//     64-byte low-S r||s signature;
//   - CID: CIDv1, dag-cbor codec, sha2-256 of the signed DAG-CBOR bytes;
//   - DID (genesis only): "did:plc:" + first 24 chars of lowercase
//     base32 (RFC 4648 alphabet, no padding) of sha256(signed DAG-CBOR).
//
// The JSON encoding of Operation and Tombstone is the directory's wire format.
package plc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Operation types on the wire.
const (
	TypeOperation = "plc_operation"
	TypeTombstone = "plc_tombstone"
	// TypeLegacyCreate is the deprecated v1 genesis format ("create"). It
	// can appear in old logs; this package does not build or parse it.
	TypeLegacyCreate = "create"
)

// Well-known atproto entries of an operation.
const (
	// VerificationMethodAtproto is the verificationMethods key of the
	// account's repo signing key ("#atproto" in the DID document).
	VerificationMethodAtproto = "atproto"
	// ServiceAtprotoPDS is the services key of the account's PDS
	// ("#atproto_pds" in the DID document).
	ServiceAtprotoPDS = "atproto_pds"
	// ServiceTypeAtprotoPDS is the type of the atproto_pds service.
	ServiceTypeAtprotoPDS = "AtprotoPersonalDataServer"
)

// Spec limits.
const (
	MaxRotationKeys        = 5
	MaxVerificationMethods = 10
)

var (
	// ErrInvalidSignature: no rotation key verifies the signature.
	ErrInvalidSignature = errors.New("plc: invalid operation signature")
	// ErrNotSigned: the operation has no sig.
	ErrNotSigned = errors.New("plc: operation is not signed")
	// ErrNotGenesis: DID() on an operation with a prev.
	ErrNotGenesis = errors.New("plc: not a genesis operation (prev is set)")
)

// Service is one entry of an operation's services map.
type Service struct {
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
}

// Operation is a regular ("plc_operation") operation: a genesis operation
// when Prev is nil, an update otherwise.
//
// Its JSON form is exactly the directory's wire format:
// {"type","rotationKeys","verificationMethods","alsoKnownAs","services","prev","sig"}
// with "prev": null for a genesis operation; nil slices and maps are
// encoded as [] and {}. "sig" is left out only while the operation is
// unsigned.
type Operation struct {
	Type                string
	RotationKeys        []string
	VerificationMethods map[string]string
	AlsoKnownAs         []string
	Services            map[string]Service
	Prev                *string
	Sig                 string
}

// Tombstone ("plc_tombstone") deactivates a DID. Prev is required.
type Tombstone struct {
	Type string
	Prev string
	Sig  string
}

// NewGenesis builds an unsigned genesis operation for an atproto account:
// verificationMethods.atproto = signingKey, alsoKnownAs = ["at://"+handle],
// services.atproto_pds = pdsEndpoint. rotationKeys are did:key strings,
// highest priority first. Sign it with one of the rotation keys, then call
// DID.
func NewGenesis(signingKey atcrypto.PublicKey, rotationKeys []string, handle string, pdsEndpoint string) *Operation {
	return &Operation{
		Type:                TypeOperation,
		RotationKeys:        append([]string(nil), rotationKeys...),
		VerificationMethods: map[string]string{VerificationMethodAtproto: signingKey.DIDKey()},
		AlsoKnownAs:         []string{"at://" + handle},
		Services: map[string]Service{
			ServiceAtprotoPDS: {Type: ServiceTypeAtprotoPDS, Endpoint: pdsEndpoint},
		},
		Prev: nil,
	}
}

// UpdateFrom builds an unsigned update operation carrying the current state
// d (deep-copied), with prev = prevCID (the CID of the last operation, see
// Client.GetAuditLog or Operation.CID), then applies mutate (may be nil).
func UpdateFrom(d *Data, prevCID string, mutate func(*Operation)) *Operation {
	op := &Operation{
		Type:                TypeOperation,
		RotationKeys:        append([]string(nil), d.RotationKeys...),
		VerificationMethods: copyMap(d.VerificationMethods),
		AlsoKnownAs:         append([]string(nil), d.AlsoKnownAs...),
		Services:            copyMap(d.Services),
		Prev:                &prevCID,
	}
	if mutate != nil {
		mutate(op)
	}
	return op
}

// Next builds an unsigned update operation that follows op: same state,
// prev = op.CID(), then mutate (may be nil) is applied. op must be signed.
func (op *Operation) Next(mutate func(*Operation)) (*Operation, error) {
	c, err := op.CID()
	if err != nil {
		return nil, err
	}
	return UpdateFrom(op.Data(""), c.String(), mutate), nil
}

// NewTombstone builds an unsigned tombstone following the operation whose
// CID is prevCID.
func NewTombstone(prevCID string) *Tombstone {
	return &Tombstone{Type: TypeTombstone, Prev: prevCID}
}

// Data returns the DID state this operation sets (deep copy).
func (op *Operation) Data(did string) *Data {
	return &Data{
		DID:                 did,
		RotationKeys:        append([]string{}, op.RotationKeys...),
		VerificationMethods: nonNilMap(copyMap(op.VerificationMethods)),
		AlsoKnownAs:         append([]string{}, op.AlsoKnownAs...),
		Services:            nonNilMap(copyMap(op.Services)),
	}
}

// IsGenesis reports whether op has no prev.
func (op *Operation) IsGenesis() bool { return op.Prev == nil }

// ---- CBOR forms ----

func (op *Operation) cborMap(withSig bool) map[string]any {
	rot := make([]any, len(op.RotationKeys))
	for i, k := range op.RotationKeys {
		rot[i] = k
	}
	aka := make([]any, len(op.AlsoKnownAs))
	for i, a := range op.AlsoKnownAs {
		aka[i] = a
	}
	vm := make(map[string]any, len(op.VerificationMethods))
	for k, v := range op.VerificationMethods {
		vm[k] = v
	}
	svc := make(map[string]any, len(op.Services))
	for k, s := range op.Services {
		svc[k] = map[string]any{"type": s.Type, "endpoint": s.Endpoint}
	}
	m := map[string]any{
		"type":                op.Type,
		"rotationKeys":        rot,
		"verificationMethods": vm,
		"alsoKnownAs":         aka,
		"services":            svc,
		"prev":                nil, // present with null value in a genesis op
	}
	if op.Prev != nil {
		m["prev"] = *op.Prev
	}
	if withSig {
		m["sig"] = op.Sig
	}
	return m
}

// UnsignedBytes returns the DAG-CBOR encoding of the operation without sig:
// the bytes that are signed.
func (op *Operation) UnsignedBytes() ([]byte, error) {
	if op.Type != TypeOperation {
		return nil, fmt.Errorf("plc: operation type %q, want %q", op.Type, TypeOperation)
	}
	return atdata.MarshalCBOR(op.cborMap(false))
}

// SignedBytes returns the DAG-CBOR encoding of the signed operation: the
// bytes hashed for the CID and the DID.
func (op *Operation) SignedBytes() ([]byte, error) {
	if op.Type != TypeOperation {
		return nil, fmt.Errorf("plc: operation type %q, want %q", op.Type, TypeOperation)
	}
	if op.Sig == "" {
		return nil, ErrNotSigned
	}
	return atdata.MarshalCBOR(op.cborMap(true))
}

// Sign sets Sig to base64url (no padding) of key.HashAndSign(UnsignedBytes).
// For the directory to accept it, key must be one of the rotation keys of
// the previous state (of op itself for a genesis operation).
func (op *Operation) Sign(key atcrypto.PrivateKey) error {
	b, err := op.UnsignedBytes()
	if err != nil {
		return err
	}
	sig, err := key.HashAndSign(b)
	if err != nil {
		return fmt.Errorf("plc: sign: %w", err)
	}
	op.Sig = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// CID returns the CIDv1 (dag-cbor, sha2-256) of the signed operation; its
// string form is what the next operation puts in prev.
func (op *Operation) CID() (cid.Cid, error) {
	b, err := op.SignedBytes()
	if err != nil {
		return cid.Undef, err
	}
	return cborCID(b)
}

var plcBase32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// DID computes the did:plc identifier of a signed genesis operation.
func (op *Operation) DID() (string, error) {
	if op.Prev != nil {
		return "", ErrNotGenesis
	}
	b, err := op.SignedBytes()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "did:plc:" + strings.ToLower(plcBase32.EncodeToString(sum[:]))[:24], nil
}

// VerifySignature checks that one of rotationKeys (did:key strings) signed
// op. For a genesis operation pass op.RotationKeys; for an update, the
// rotation keys of the state it replaces.
func (op *Operation) VerifySignature(rotationKeys []string) error {
	_, err := op.SignerIndex(rotationKeys)
	return err
}

// SignerIndex is VerifySignature that also returns the index in
// rotationKeys of the key that verifies (lower = higher priority; the
// directory uses it for nullification within 72 hours).
func (op *Operation) SignerIndex(rotationKeys []string) (int, error) {
	b, err := op.UnsignedBytes()
	if err != nil {
		return -1, err
	}
	return verifyAny(b, op.Sig, rotationKeys)
}

// ---- Tombstone ----

func (t *Tombstone) cborMap(withSig bool) map[string]any {
	m := map[string]any{"type": t.Type, "prev": t.Prev}
	if withSig {
		m["sig"] = t.Sig
	}
	return m
}

func (t *Tombstone) check() error {
	if t.Type != TypeTombstone {
		return fmt.Errorf("plc: tombstone type %q, want %q", t.Type, TypeTombstone)
	}
	if t.Prev == "" {
		return errors.New("plc: tombstone without prev")
	}
	return nil
}

// UnsignedBytes returns the DAG-CBOR encoding of the tombstone without sig.
func (t *Tombstone) UnsignedBytes() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return atdata.MarshalCBOR(t.cborMap(false))
}

// SignedBytes returns the DAG-CBOR encoding of the signed tombstone.
func (t *Tombstone) SignedBytes() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.Sig == "" {
		return nil, ErrNotSigned
	}
	return atdata.MarshalCBOR(t.cborMap(true))
}

// Sign signs the tombstone with a rotation key of the current state.
func (t *Tombstone) Sign(key atcrypto.PrivateKey) error {
	b, err := t.UnsignedBytes()
	if err != nil {
		return err
	}
	sig, err := key.HashAndSign(b)
	if err != nil {
		return fmt.Errorf("plc: sign: %w", err)
	}
	t.Sig = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// CID returns the CIDv1 (dag-cbor, sha2-256) of the signed tombstone.
func (t *Tombstone) CID() (cid.Cid, error) {
	b, err := t.SignedBytes()
	if err != nil {
		return cid.Undef, err
	}
	return cborCID(b)
}

// VerifySignature checks that one of rotationKeys (of the state the
// tombstone replaces) signed it.
func (t *Tombstone) VerifySignature(rotationKeys []string) error {
	b, err := t.UnsignedBytes()
	if err != nil {
		return err
	}
	_, err = verifyAny(b, t.Sig, rotationKeys)
	return err
}

// ---- helpers ----

func cborCID(b []byte) (cid.Cid, error) {
	mh, err := multihash.Sum(b, multihash.SHA2_256, -1)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.DagCBOR, mh), nil
}

// decodeSig strictly decodes a base64url (no padding) signature: no "=",
// no whitespace, zero trailing bits.
func decodeSig(s string) ([]byte, error) {
	if s == "" {
		return nil, ErrNotSigned
	}
	if strings.ContainsAny(s, "=\r\n \t") {
		return nil, fmt.Errorf("%w: sig is not unpadded base64url", ErrInvalidSignature)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: sig is not unpadded base64url: %v", ErrInvalidSignature, err)
	}
	if len(b) != 64 {
		return nil, fmt.Errorf("%w: sig is %d bytes, want 64 (compact r||s)", ErrInvalidSignature, len(b))
	}
	return b, nil
}

func verifyAny(unsigned []byte, sigStr string, rotationKeys []string) (int, error) {
	sig, err := decodeSig(sigStr)
	if err != nil {
		return -1, err
	}
	for i, k := range rotationKeys {
		pub, err := atcrypto.ParsePublicDIDKey(k)
		if err != nil {
			continue // an unparseable key cannot have signed
		}
		if pub.HashAndVerify(unsigned, sig) == nil { // strict: low-S only
			return i, nil
		}
	}
	return -1, ErrInvalidSignature
}

func copyMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func nonNilMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// ---- JSON ----

type opJSON struct {
	Type                string             `json:"type"`
	RotationKeys        []string           `json:"rotationKeys"`
	VerificationMethods map[string]string  `json:"verificationMethods"`
	AlsoKnownAs         []string           `json:"alsoKnownAs"`
	Services            map[string]Service `json:"services"`
	Prev                *string            `json:"prev"`
	Sig                 string             `json:"sig,omitempty"`
}

// MarshalJSON encodes the PLC wire format.
func (op Operation) MarshalJSON() ([]byte, error) {
	j := opJSON{
		Type:                op.Type,
		RotationKeys:        op.RotationKeys,
		VerificationMethods: nonNilMap(op.VerificationMethods),
		AlsoKnownAs:         op.AlsoKnownAs,
		Services:            nonNilMap(op.Services),
		Prev:                op.Prev,
		Sig:                 op.Sig,
	}
	if j.RotationKeys == nil {
		j.RotationKeys = []string{}
	}
	if j.AlsoKnownAs == nil {
		j.AlsoKnownAs = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the PLC wire format. Unknown fields are rejected:
// they would be covered by the signature and the CID on the directory but
// could not be reproduced from this struct.
func (op *Operation) UnmarshalJSON(b []byte) error {
	var j opJSON
	if err := decodeStrict(b, &j, []string{"type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev"}); err != nil {
		return err
	}
	if j.Type != TypeOperation {
		return fmt.Errorf("plc: operation type %q, want %q", j.Type, TypeOperation)
	}
	*op = Operation{
		Type:                j.Type,
		RotationKeys:        j.RotationKeys,
		VerificationMethods: j.VerificationMethods,
		AlsoKnownAs:         j.AlsoKnownAs,
		Services:            j.Services,
		Prev:                j.Prev,
		Sig:                 j.Sig,
	}
	return nil
}

type tombJSON struct {
	Type string `json:"type"`
	Prev string `json:"prev"`
	Sig  string `json:"sig,omitempty"`
}

// MarshalJSON encodes the PLC wire format {"type","prev","sig"}.
func (t Tombstone) MarshalJSON() ([]byte, error) {
	return json.Marshal(tombJSON{Type: t.Type, Prev: t.Prev, Sig: t.Sig})
}

// UnmarshalJSON decodes the PLC wire format; unknown fields are rejected.
func (t *Tombstone) UnmarshalJSON(b []byte) error {
	var j tombJSON
	if err := decodeStrict(b, &j, []string{"type", "prev"}); err != nil {
		return err
	}
	if j.Type != TypeTombstone {
		return fmt.Errorf("plc: tombstone type %q, want %q", j.Type, TypeTombstone)
	}
	*t = Tombstone{Type: j.Type, Prev: j.Prev, Sig: j.Sig}
	return nil
}

// decodeStrict decodes b into v, rejecting unknown fields, trailing data and
// missing required keys.
func decodeStrict(b []byte, v any, required []string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("plc: decode operation: %w", err)
	}
	if dec.More() {
		return errors.New("plc: decode operation: trailing data")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("plc: decode operation: %w", err)
	}
	for _, k := range required {
		if _, ok := keys[k]; !ok {
			return fmt.Errorf("plc: decode operation: missing %q", k)
		}
	}
	return nil
}

// ParseOperation decodes one operation in wire format: it returns an
// *Operation or a *Tombstone. The legacy "create" format is reported as an
// error.
func ParseOperation(b []byte) (any, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("plc: decode operation: %w", err)
	}
	switch head.Type {
	case TypeOperation:
		op := new(Operation)
		if err := op.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		return op, nil
	case TypeTombstone:
		t := new(Tombstone)
		if err := t.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		return t, nil
	case TypeLegacyCreate:
		return nil, fmt.Errorf("plc: legacy %q operations are not supported", TypeLegacyCreate)
	default:
		return nil, fmt.Errorf("plc: unknown operation type %q", head.Type)
	}
}
