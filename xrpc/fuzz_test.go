package xrpc

// Fuzz targets for the parsers an XRPC request meets. Seeds: the interop vectors in testdata/interop (see its
// PROVENANCE.md) and the tests' own inputs; found crashers stay in testdata/fuzz/<target>/ and are replayed
// by the plain `go test` run. scripts/fuzz.sh runs every target; docs/testing.md records the runs.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/lexicon"

	"github.com/pdsgo/pds/lexicons"
)

// fuzzCatalog is the interop vectors' record catalog.
func fuzzCatalog(f *testing.F) lexicon.Catalog {
	cat := lexicon.NewBaseCatalog()
	if err := cat.LoadDirectory(filepath.Join(interopDir, "lexicon/catalog")); err != nil {
		f.Fatal(err)
	}
	return cat
}

// seedRecords adds the data-model and record-data vectors (as JSON documents) to f.
func seedRecords(f *testing.F) {
	var dm []struct {
		JSON json.RawMessage `json:"json"`
	}
	for _, name := range []string{"data-model/data-model-valid.json", "data-model/data-model-invalid.json", "data-model/data-model-fixtures.json"} {
		b, err := os.ReadFile(filepath.Join(interopDir, name))
		if err != nil {
			f.Fatal(err)
		}
		dm = dm[:0]
		if err := json.Unmarshal(b, &dm); err != nil {
			f.Fatal(err)
		}
		for _, c := range dm {
			f.Add([]byte(c.JSON))
		}
	}
	var rd []struct {
		Data json.RawMessage `json:"data"`
	}
	for _, name := range []string{"lexicon/record-data-valid.json", "lexicon/record-data-invalid.json"} {
		b, err := os.ReadFile(filepath.Join(interopDir, name))
		if err != nil {
			f.Fatal(err)
		}
		rd = rd[:0]
		if err := json.Unmarshal(b, &rd); err != nil {
			f.Fatal(err)
		}
		for _, c := range rd {
			f.Add([]byte(c.Data))
		}
	}
	f.Add([]byte(`{"$type":"app.bsky.feed.post","text":"hi","createdAt":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"$type":"x","a":{"$link":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"},"b":{"$bytes":"AAE"}}`))
}

// FuzzRecordJSON: a JSON record body through the data-model checks (ParseRecord) and lexicon validation.
// Accepted records round-trip: their CBOR decodes to the same value, re-encodes to the same bytes, and renders
// back to JSON the same way on both read paths.
func FuzzRecordJSON(f *testing.F) {
	seedRecords(f)
	cat := fuzzCatalog(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := ParseRecord(raw)
		if err != nil {
			var xe *Error
			if !errors.As(err, &xe) || xe.Status != 400 {
				t.Fatalf("ParseRecord error is not a 400 XRPC error: %v", err)
			}
			return
		}
		for _, mode := range []ValidationMode{ValidateAuto, ValidateRequire} {
			if _, err := ValidateRecord(cat, rec.Type, rec, mode); err != nil {
				var xe *Error
				if !errors.As(err, &xe) || xe.Status != 400 {
					t.Fatalf("ValidateRecord error is not a 400 XRPC error: %v", err)
				}
			}
		}
		val, err := atdata.UnmarshalCBOR(rec.CBOR)
		if err != nil {
			t.Fatalf("accepted record's CBOR does not decode: %v", err)
		}
		again, err := atdata.MarshalCBOR(val)
		if err != nil || !bytes.Equal(again, rec.CBOR) {
			t.Fatalf("CBOR not canonical: %v", err)
		}
		checkTranscode(t, rec.CBOR)
	})
}

// checkTranscode: the fast CBOR->JSON path gives, byte for byte, what the general path gives.
func checkTranscode(t *testing.T, cbor []byte) {
	fast, ok := transcodeRecord(nil, cbor)
	if !ok {
		return
	}
	val, err := atdata.UnmarshalCBOR(cbor)
	if err != nil {
		t.Fatalf("transcoder accepted CBOR atdata refuses (%v): %x", err, cbor)
	}
	slow, err := json.Marshal(val)
	if err != nil {
		t.Fatalf("general path: %v", err)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("transcoder %s, general path %s (cbor %x)", fast, slow, cbor)
	}
}

// FuzzRecordCBOR: arbitrary bytes as a stored record block (DAG-CBOR): the read path (AppendRecordJSON, its
// fast transcoder and atdata's decoder) never panics, and the two paths agree.
func FuzzRecordCBOR(f *testing.F) {
	var fx []struct {
		CBOR string `json:"cbor_base64"`
	}
	b, err := os.ReadFile(filepath.Join(interopDir, "data-model/data-model-fixtures.json"))
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		f.Fatal(err)
	}
	for _, c := range fx {
		raw, err := base64.RawStdEncoding.DecodeString(c.CBOR)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{0xa1, 0x65, '$', 't', 'y', 'p', 'e', 0x61, 'x'})
	f.Fuzz(func(t *testing.T, cbor []byte) {
		checkTranscode(t, cbor)
		out, err := AppendRecordJSON([]byte("x"), cbor)
		if err == nil && (len(out) < 2 || out[0] != 'x' || !json.Valid(out[1:])) {
			t.Fatalf("AppendRecordJSON: %q", out)
		}
	})
}

// FuzzQueryParams: a raw query string through the lexicon parameter validator of real methods (every
// parameter type and format the server's lexicons use among them): no panic, and every refusal a 400.
func FuzzQueryParams(f *testing.F) {
	cat, err := lexicons.Catalog()
	if err != nil {
		f.Fatal(err)
	}
	methods := []string{
		"com.atproto.repo.listRecords", "com.atproto.repo.getRecord", "com.atproto.sync.getRepo",
		"com.atproto.sync.getBlocks", "com.atproto.sync.subscribeRepos", "com.atproto.admin.getAccountInfos",
		"app.bsky.feed.getAuthorFeed", "app.bsky.notification.listNotifications", "com.atproto.server.getServiceAuth",
		"com.atproto.label.queryLabels", "app.bsky.feed.searchPosts",
	}
	var params []*lexicon.SchemaParams
	for _, m := range methods {
		s, err := cat.Resolve(m)
		if err != nil {
			f.Fatalf("%s: %v", m, err)
		}
		switch d := s.Def.(type) {
		case lexicon.SchemaQuery:
			params = append(params, d.Parameters)
		case lexicon.SchemaSubscription:
			params = append(params, d.Parameters)
		}
	}
	for _, q := range []string{
		"repo=did:plc:abc&collection=app.bsky.feed.post&limit=10&reverse=true",
		"did=did:plc:abc&cids=bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm&cids=x",
		"cursor=-1", "limit=101", "limit=1e3", "dids=a&dids=b", "aud=did:web:x&exp=99999999999&lxm=app.bsky.x",
		"uriPatterns=*&sources=did:plc:x", "q=hello&sort=top&since=2024-01-01T00:00:00Z&lang=en-US&tag=%00",
		"reverse=yes", "limit=%F0%9F", "filter=posts_with_media&includePins=1",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // echo answers a malformed query before any validator runs
		}
		for _, p := range params {
			if _, err := validateParams(p, q); err != nil {
				var xe *Error
				if !errors.As(err, &xe) || xe.Status != 400 {
					t.Fatalf("validateParams error is not a 400 XRPC error: %v", err)
				}
			}
		}
	})
}
