package xrpc

import (
	"fmt"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// ValidationMode is the `validate` field of record writes.
type ValidationMode int

const (
	ValidateAuto    ValidationMode = iota // validate unset: known lexicons are validated, unknown -> "unknown"
	ValidateRequire                       // validate=true: an unknown lexicon is an error
	ValidateSkip                          // validate=false: no lexicon validation (data model still enforced)
)

// ModeFromBool maps the optional `validate` input field to a mode.
func ModeFromBool(v *bool) ValidationMode {
	switch {
	case v == nil:
		return ValidateAuto
	case *v:
		return ValidateRequire
	}
	return ValidateSkip
}

// Validation statuses returned by ValidateRecord.
const (
	StatusValid   = "valid"
	StatusUnknown = "unknown"
)

// RecordData is a record that passed the AT Protocol data-model checks.
type RecordData struct {
	Value map[string]any // atdata form (CIDLink, Bytes, Blob, int64, ...)
	CBOR  []byte         // canonical DAG-CBOR
	CID   cid.Cid        // CIDv1, dag-cbor, sha2-256 of CBOR
	Type  string         // $type
}

// Blobs lists the blob references in the record (not de-duplicated).
func (r *RecordData) Blobs() []atdata.Blob {
	return atdata.ExtractBlobs(r.Value)
}

var recordCIDPrefix = cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}

// ParseRecord parses the raw JSON of a record object and enforces the data
// model for every record, known lexicon or not: valid UTF-8, an object, no
// floats, integers within ±(2^53-1), well-formed $link/$bytes/blob objects,
// $type a non-empty string, no duplicate keys, size limits (2 MiB of JSON,
// 1 MiB of CBOR). It builds the DAG-CBOR bytes and the CID.
// Errors are *Error (400 InvalidRequest).
func ParseRecord(raw []byte) (*RecordData, error) {
	if len(raw) > atdata.MAX_JSON_RECORD_SIZE {
		return nil, InvalidRequest("Invalid record: too large")
	}
	if err := checkJSON(raw, maxRecordDepth); err != nil {
		switch err {
		case errSyntax, errTrailing:
			return nil, InvalidRequest("Invalid record: malformed JSON")
		case errNotObject:
			return nil, InvalidRequest("Invalid record: must be a JSON object")
		}
		return nil, InvalidRequest("Invalid record: %s", err.Error())
	}
	val, err := atdata.UnmarshalJSON(raw)
	if err != nil {
		return nil, InvalidRequest("Invalid record: %s", err.Error())
	}
	return recordFromValue(val)
}

func recordFromValue(val map[string]any) (*RecordData, error) {
	t, ok := val["$type"].(string)
	if !ok || t == "" {
		return nil, InvalidRequest("Invalid record: $type must be a non-empty string")
	}
	if err := checkValue(val, 0); err != nil {
		return nil, InvalidRequest("Invalid record: %s", err.Error())
	}
	b, c, err := encodeData(val)
	if err != nil {
		return nil, err
	}
	return &RecordData{Value: val, CBOR: b, CID: c, Type: t}, nil
}

// encodeData builds the DAG-CBOR bytes and CID of atdata-form data.
func encodeData(val map[string]any) ([]byte, cid.Cid, error) {
	b, err := atdata.MarshalCBOR(val)
	if err != nil {
		return nil, cid.Undef, InvalidRequest("Invalid record: can not be encoded as DAG-CBOR")
	}
	if len(b) > atdata.MAX_CBOR_RECORD_SIZE {
		return nil, cid.Undef, InvalidRequest("Invalid record: larger than %d bytes as CBOR", atdata.MAX_CBOR_RECORD_SIZE)
	}
	c, err := recordCIDPrefix.Sum(b)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("record CID: %w", err) // cannot happen with sha2-256
	}
	return b, c, nil
}

// checkValue covers what atdata's parser leaves out: blob sizes must not be
// negative, legacy blobs ({cid, mimeType}) are not accepted in new writes,
// integers must be in the safe range (values built in Go, not from JSON),
// and the nesting depth.
func checkValue(v any, depth int) error {
	if depth > maxRecordDepth {
		return fmt.Errorf("nested deeper than %d levels", maxRecordDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	case atdata.Blob:
		if x.Size < 0 {
			return fmt.Errorf("legacy or negative-size blob references are not allowed")
		}
		if !x.Ref.IsDefined() {
			return fmt.Errorf("blob ref is missing")
		}
	case int64:
		if x > maxSafeInteger || x < -maxSafeInteger {
			return fmt.Errorf("integer out of range (must be within ±(2^53-1))")
		}
	}
	return nil
}

// ValidateRecord checks a parsed record written to collection. The $type
// must equal the collection in every mode. Then, by mode: skip -> "" (no
// lexicon check); auto -> "valid" for a known lexicon that validates,
// "unknown" for an unknown one; require -> unknown lexicon is an error.
// Failures are 400 InvalidRequest "Invalid <nsid> record: <reason>".
func ValidateRecord(cat lexicon.Catalog, collection string, rec *RecordData, mode ValidationMode) (string, error) {
	if _, err := ParseNSID(collection); err != nil {
		return "", InvalidRequest("Invalid collection: must be an NSID")
	}
	if rec.Type != collection {
		return "", InvalidRequest("Invalid $type: expected %s, got %s", collection, rec.Type)
	}
	if mode == ValidateSkip {
		return "", nil
	}
	var s *lexicon.Schema
	var err error
	if cat != nil {
		s, err = cat.Resolve(collection)
	}
	if cat == nil || err != nil {
		if mode == ValidateRequire {
			return "", InvalidRequest("Lexicon not found: %s", collection)
		}
		return StatusUnknown, nil
	}
	if _, ok := s.Def.(lexicon.SchemaRecord); !ok {
		return "", InvalidRequest("Invalid %s record: the lexicon does not define a record type", collection)
	}
	if err := lexicon.ValidateRecord(cat, rec.Value, collection, 0); err != nil {
		return "", InvalidRequest("Invalid %s record: %s", collection, err.Error())
	}
	return StatusValid, nil
}

// CheckRecordKey checks rkey's syntax and, for a collection with a record
// lexicon, its key type: "tid", "nsid", "any" or "literal:<value>".
// Unknown collections accept any valid record key.
func CheckRecordKey(cat lexicon.Catalog, collection, rkey string) error {
	if _, err := ParseRecordKey(rkey); err != nil {
		return InvalidRequest("Invalid record key")
	}
	if cat == nil {
		return nil
	}
	s, err := cat.Resolve(collection)
	if err != nil {
		return nil
	}
	rs, ok := s.Def.(lexicon.SchemaRecord)
	if !ok {
		return nil
	}
	switch {
	case rs.Key == "tid":
		if _, err := ParseTID(rkey); err != nil {
			return InvalidRequest("Invalid record key for %s: must be a TID", collection)
		}
	case rs.Key == "nsid":
		if _, err := ParseNSID(rkey); err != nil {
			return InvalidRequest("Invalid record key for %s: must be an NSID", collection)
		}
	case strings.HasPrefix(rs.Key, "literal:"):
		if want := strings.TrimPrefix(rs.Key, "literal:"); rkey != want {
			return InvalidRequest("Invalid record key for %s: must be %q", collection, want)
		}
	}
	return nil
}
