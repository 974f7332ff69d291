package xrpc

import (
	"encoding/json"

	"github.com/bluesky-social/indigo/atproto/atdata"
)

// parseDataForTest runs the record pipeline minus the $type requirement, for
// data-model fixtures that are not records.
func parseDataForTest(raw json.RawMessage) (*RecordData, error) {
	if err := checkJSON(raw, maxRecordDepth); err != nil {
		return nil, err
	}
	val, err := atdata.UnmarshalJSON(raw)
	if err != nil {
		return nil, err
	}
	b, c, err := encodeData(val)
	if err != nil {
		return nil, err
	}
	return &RecordData{Value: val, CBOR: b, CID: c}, nil
}
