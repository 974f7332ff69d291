package plcserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/ipfs/go-cid"
	"github.com/mr-tron/base58"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/identity/plcserver/plcstore"
)

// Limits of the current reference server (constraints.ts) and of
// @did-plc/lib (at most 5 rotation keys, the spec's bound).
const (
	MaxOpBytes             = 4000 // DAG-CBOR encoding of the submitted operation
	MaxAlsoKnownAs         = 10
	MaxAlsoKnownAsLength   = 258 // a 253-character handle plus "at://"
	maxRotationEntries     = 10  // constraints.ts; the lib's 5 applies after it
	MaxRotationKeys        = 5
	MaxServices            = 10
	MaxServiceTypeLength   = 256
	MaxServiceEndpointLen  = 512
	MaxVerificationMethods = 10
	MaxIDLength            = 32        // service and verification method ids
	MaxVerificationKeyLen  = 256       // a did:key in verificationMethods
	MaxBodyBytes           = 100 << 10 // express.json's limit
	RecoveryWindow         = 72 * time.Hour
)

// opError is a refusal with the reference's status and message.
type opError struct {
	status int
	msg    string
}

func (e *opError) Error() string { return e.msg }

func bad(format string, args ...any) *opError {
	return &opError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// The reference's PlcError messages (@did-plc/lib error.ts).
var (
	errMisordered = bad("Operations not correctly ordered")
)

func errInvalidSig(op any) *opError {
	b, _ := json.Marshal(op)
	return bad("Invalid signature on op: %s", b)
}

// ImproperOperationError interpolates the operation object, which JS prints
// as "[object Object]".
func errImproper(reason string) *opError {
	return bad("Improperly formatted operation, %s: [object Object]", reason)
}

// submitted is a decoded operation: exactly one of op, ts is set.
type submitted struct {
	op *plc.Operation
	ts *plc.Tombstone
}

func (s submitted) value() any {
	if s.op != nil {
		return s.op
	}
	return s.ts
}

func (s submitted) prev() *string {
	if s.op != nil {
		return s.op.Prev
	}
	return &s.ts.Prev
}

func (s submitted) signedBytes() ([]byte, error) {
	if s.op != nil {
		return s.op.SignedBytes()
	}
	return s.ts.SignedBytes()
}

// signerIndex returns the index in keys of the key that signed s.
func (s submitted) signerIndex(keys []string) (int, error) {
	if s.op != nil {
		return s.op.SignerIndex(keys)
	}
	if err := s.ts.VerifySignature(keys); err != nil {
		return -1, err
	}
	// Tombstone has no SignerIndex; find it key by key.
	for i, k := range keys {
		if s.ts.VerifySignature([]string{k}) == nil {
			return i, nil
		}
	}
	return -1, plc.ErrInvalidSignature
}

// decodeOp checks body against the reference's schema (opOrTombstone: the
// fields of @did-plc/lib's zod types; unknown fields are dropped, as the
// current reference does) and its size and count limits.
func decodeOp(body []byte) (submitted, *opError) {
	notValid := func() *opError {
		var buf bytes.Buffer
		if json.Compact(&buf, body) != nil {
			buf.Reset()
			buf.WriteString("{}")
		}
		return bad("Not a valid operation: %s", buf.String())
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return submitted{}, notValid()
	}
	str := func(name string) (string, bool) {
		var s string
		raw, ok := fields[name]
		if !ok || raw == nil || json.Unmarshal(raw, &s) != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return "", false
		}
		return s, true
	}
	typ, _ := str("type")
	sig, okSig := str("sig")
	var s submitted
	switch typ {
	case plc.TypeTombstone:
		prev, ok := str("prev")
		if !ok || !okSig {
			return submitted{}, notValid()
		}
		s.ts = &plc.Tombstone{Type: typ, Prev: prev, Sig: sig}
	case plc.TypeOperation:
		var op plc.Operation
		op.Type = typ
		op.Sig = sig
		if !okSig ||
			!strictJSON(fields["rotationKeys"], &op.RotationKeys) ||
			!strictJSON(fields["alsoKnownAs"], &op.AlsoKnownAs) ||
			!strictJSON(fields["verificationMethods"], &op.VerificationMethods) {
			return submitted{}, notValid()
		}
		var svcs map[string]*struct {
			Type     *string `json:"type"`
			Endpoint *string `json:"endpoint"`
		}
		if !strictJSON(fields["services"], &svcs) {
			return submitted{}, notValid()
		}
		op.Services = make(map[string]plc.Service, len(svcs))
		for id, sv := range svcs {
			if sv == nil || sv.Type == nil || sv.Endpoint == nil {
				return submitted{}, notValid()
			}
			op.Services[id] = plc.Service{Type: *sv.Type, Endpoint: *sv.Endpoint}
		}
		raw, ok := fields["prev"]
		if !ok {
			return submitted{}, notValid()
		}
		if !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			p, ok := str("prev")
			if !ok {
				return submitted{}, notValid()
			}
			op.Prev = &p
		}
		s.op = &op
	default:
		return submitted{}, notValid()
	}
	b, err := s.signedBytes()
	if err != nil {
		return submitted{}, notValid()
	}
	if len(b) > MaxOpBytes {
		return submitted{}, bad("Operation too large (%d bytes maximum in cbor encoding)", MaxOpBytes)
	}
	if s.op != nil {
		if e := checkLimits(s.op); e != nil {
			return submitted{}, e
		}
	}
	return s, nil
}

// strictJSON decodes a required, non-null JSON value whose elements are all
// of the target type (a null element is refused, as zod does).
func strictJSON(raw json.RawMessage, v any) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return false
	}
	if bytes.Contains(t, []byte("null")) {
		// A null element or value decodes to "" in Go; zod refuses it.
		var anyv any
		if json.Unmarshal(t, &anyv) != nil || hasNull(anyv) {
			return false
		}
	}
	return json.Unmarshal(t, v) == nil
}

func hasNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}

// checkLimits applies the current reference server's constraints, then
// the lib's rotation key rules.
func checkLimits(op *plc.Operation) *opError {
	if len(op.AlsoKnownAs) > MaxAlsoKnownAs {
		return bad("Too many alsoKnownAs entries (max %d)", MaxAlsoKnownAs)
	}
	seen := make(map[string]bool, len(op.AlsoKnownAs))
	for _, aka := range op.AlsoKnownAs {
		if jsLen(aka) > MaxAlsoKnownAsLength {
			return bad("alsoKnownAs entry too long (max %d): %s", MaxAlsoKnownAsLength, aka)
		}
		if seen[aka] {
			return bad("duplicate alsoKnownAs entry: %s", aka)
		}
		seen[aka] = true
	}
	if len(op.RotationKeys) > maxRotationEntries {
		return bad("Too many rotationKey entries (max %d)", maxRotationEntries)
	}
	for _, k := range op.RotationKeys {
		if _, err := atcrypto.ParsePublicDIDKey(k); err != nil {
			return bad("Invalid rotationKey: %s", k)
		}
	}
	if len(op.Services) > MaxServices {
		return bad("Too many service entries (max %d)", MaxServices)
	}
	for _, id := range sortedKeys(op.Services) {
		sv := op.Services[id]
		if jsLen(id) > MaxIDLength {
			return bad("Service id too long (max %d): %s", MaxIDLength, id)
		}
		if jsLen(sv.Type) > MaxServiceTypeLength {
			return bad("Service type too long (max %d)", MaxServiceTypeLength)
		}
		if jsLen(sv.Endpoint) > MaxServiceEndpointLen {
			return bad("Service endpoint too long (max %d)", MaxServiceEndpointLen)
		}
	}
	if len(op.VerificationMethods) > MaxVerificationMethods {
		return bad("Too many Verification Method entries (max %d)", MaxVerificationMethods)
	}
	for _, id := range sortedKeys(op.VerificationMethods) {
		k := op.VerificationMethods[id]
		if jsLen(id) > MaxIDLength {
			return bad("Verification Method id too long (max %d): %s", MaxIDLength, id)
		}
		if jsLen(k) > MaxVerificationKeyLen {
			return bad("Verification Method key too long (max %d): %s", MaxVerificationKeyLen, k)
		}
		// Only did:key syntax (base58btc multibase), any key type: the
		// current reference no longer restricts signing key types.
		mb, ok := strings.CutPrefix(k, "did:key:")
		if !ok || !strings.HasPrefix(mb, "z") || len(mb) < 2 {
			return bad("Invalid verificationMethod key: %s", k)
		}
		if _, err := base58.Decode(mb[1:]); err != nil {
			return bad("Invalid verificationMethod key: %s", k)
		}
	}
	if len(op.RotationKeys) > MaxRotationKeys {
		return errImproper("too many rotation keys")
	}
	if len(op.RotationKeys) < 1 {
		return errImproper("need at least one rotation key")
	}
	return nil
}

// jsLen is a string's length as JavaScript counts it (UTF-16 code units),
// which is what the reference's limits count.
func jsLen(s string) int { return len(utf16.Encode([]rune(s))) }

// logOp is a parsed entry of a DID's (non-nullified) log.
type logOp struct {
	entry plcstore.Entry
	cid   cid.Cid
	op    *plc.Operation // nil for a tombstone
}

// nextOp checks s against the DID's current log (non-nullified, oldest
// first) at time now: the reference's assureValidNextOp. It returns the CIDs
// the operation nullifies.
func nextOp(did string, log []logOp, s submitted, now time.Time) ([]string, *opError) {
	if len(log) == 0 {
		return nil, genesisOp(did, s)
	}
	p := s.prev()
	if p == nil || *p == "" {
		return nil, errMisordered
	}
	prevCID, err := cid.Decode(*p)
	if err != nil {
		// The reference throws from CID.parse (HTTP 500); a bad prev is the
		// client's fault.
		return nil, errMisordered
	}
	idx := -1
	for i, l := range log {
		if l.cid.Equals(prevCID) {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, errMisordered
	}
	last := log[idx]
	if last.op == nil {
		return nil, errMisordered // nothing follows a tombstone
	}
	keys := last.op.RotationKeys
	nullified := log[idx+1:]
	if len(nullified) == 0 {
		if _, err := s.signerIndex(keys); err != nil {
			return nil, errInvalidSig(s.value())
		}
		return nil, nil
	}
	first := nullified[0]
	var disputed int
	if first.op != nil {
		disputed, err = first.op.SignerIndex(keys)
	} else {
		var ts plc.Tombstone
		if json.Unmarshal(first.entry.Operation, &ts) == nil {
			disputed, err = submitted{ts: &ts}.signerIndex(keys)
		}
	}
	if err != nil {
		return nil, bad("Invalid signature on op: %s", first.entry.Operation)
	}
	if _, err := s.signerIndex(keys[:disputed]); err != nil {
		return nil, errInvalidSig(s.value())
	}
	if lapsed := now.Sub(first.entry.CreatedAt); lapsed > RecoveryWindow {
		return nil, bad("Recovery operation occured outside of the allowed 72 hr recovery window. Time lapsed: %d", lapsed.Milliseconds())
	}
	out := make([]string, len(nullified))
	for i, n := range nullified {
		out[i] = n.entry.CID
	}
	return out, nil
}

// genesisOp is the reference's assureValidCreationOp, except that the DID
// must be exactly the 24-character hash prefix (the reference accepts any
// prefix of at least 24 characters).
func genesisOp(did string, s submitted) *opError {
	if s.op == nil {
		return errMisordered
	}
	if _, err := s.op.SignerIndex(s.op.RotationKeys); err != nil {
		return errInvalidSig(s.op)
	}
	b, err := s.op.SignedBytes()
	if err != nil {
		return errInvalidSig(s.op)
	}
	sum := sha256.Sum256(b)
	expected := "did:plc:" + strings.ToLower(b32.EncodeToString(sum[:]))
	if len(did) < 32 {
		return bad("Improperly formatted did: too short")
	}
	if !plc.ValidDID(did) || expected[:32] != did {
		return bad("Hash of genesis operation does not match DID identifier: %s", expected)
	}
	if s.op.Prev != nil {
		return errImproper("expected null prev on create")
	}
	return nil
}
