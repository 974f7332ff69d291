package xrpc

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
)

const interopDir = "testdata/interop"

func loadJSONFile(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(interopDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// withType gives a vector object a $type so it is record-shaped; the
// vectors test data-model rules, not records, and mostly lack one.
func withType(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw // not an object: pass through unchanged
	}
	if _, ok := m["$type"]; ok {
		return raw
	}
	m["$type"] = json.RawMessage(`"com.example.vector"`)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInteropDataModelValid(t *testing.T) {
	var cases []struct {
		Note string          `json:"note"`
		JSON json.RawMessage `json:"json"`
	}
	loadJSONFile(t, "data-model/data-model-valid.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, tc := range cases {
		if _, err := ParseRecord(withType(t, tc.JSON)); err != nil {
			t.Errorf("%s: unexpected error: %v", tc.Note, err)
		}
		// nested record-shaped objects ("rcrd") must also parse on their own
		var m map[string]json.RawMessage
		_ = json.Unmarshal(tc.JSON, &m)
		if r, ok := m["rcrd"]; ok {
			if _, err := ParseRecord(r); err != nil {
				t.Errorf("%s (rcrd): unexpected error: %v", tc.Note, err)
			}
		}
	}
}

func TestInteropDataModelInvalid(t *testing.T) {
	var cases []struct {
		Note string          `json:"note"`
		JSON json.RawMessage `json:"json"`
	}
	loadJSONFile(t, "data-model/data-model-invalid.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, tc := range cases {
		_, err := ParseRecord(withType(t, tc.JSON))
		if err == nil {
			t.Errorf("%s: accepted", tc.Note)
			continue
		}
		xe, ok := err.(*Error)
		if !ok || xe.Status != 400 || xe.Name != NameInvalidRequest {
			t.Errorf("%s: want 400 InvalidRequest *Error, got %#v", tc.Note, err)
		}
	}
}

func TestInteropDataModelFixtures(t *testing.T) {
	var cases []struct {
		JSON       json.RawMessage `json:"json"`
		CBORBase64 string          `json:"cbor_base64"`
		CID        string          `json:"cid"`
	}
	loadJSONFile(t, "data-model/data-model-fixtures.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for i, tc := range cases {
		// The fixtures have no $type; ParseRecord requires one, so check the
		// encoder path on the exact fixture value.
		rec, err := parseDataForTest(tc.JSON)
		if err != nil {
			t.Fatalf("fixture %d: %v", i, err)
		}
		want, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(tc.CBORBase64, "="))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.CBOR, want) {
			t.Errorf("fixture %d: CBOR mismatch\n got %x\nwant %x", i, rec.CBOR, want)
		}
		if rec.CID.String() != tc.CID {
			t.Errorf("fixture %d: CID %s, want %s", i, rec.CID, tc.CID)
		}
	}
}

func TestInteropRecordData(t *testing.T) {
	cat := lexicon.NewBaseCatalog()
	if err := cat.LoadDirectory(filepath.Join(interopDir, "lexicon/catalog")); err != nil {
		t.Fatal(err)
	}
	type rcase struct {
		Name string          `json:"name"`
		RKey string          `json:"rkey"`
		Data json.RawMessage `json:"data"`
	}
	var valid, invalid []rcase
	loadJSONFile(t, "lexicon/record-data-valid.json", &valid)
	loadJSONFile(t, "lexicon/record-data-invalid.json", &invalid)
	if len(valid) == 0 || len(invalid) < 40 {
		t.Fatalf("too few cases: %d valid, %d invalid", len(valid), len(invalid))
	}
	const coll = "example.lexicon.record"
	for _, tc := range valid {
		rec, err := ParseRecord(tc.Data)
		if err != nil {
			t.Errorf("valid %q: ParseRecord: %v", tc.Name, err)
			continue
		}
		for _, mode := range []ValidationMode{ValidateAuto, ValidateRequire} {
			st, err := ValidateRecord(cat, coll, rec, mode)
			if err != nil || st != StatusValid {
				t.Errorf("valid %q mode %d: status %q err %v", tc.Name, mode, st, err)
			}
		}
		if err := CheckRecordKey(cat, coll, tc.RKey); err != nil {
			t.Errorf("valid %q: rkey %q: %v", tc.Name, tc.RKey, err)
		}
	}
	reached := 0
	for _, tc := range invalid {
		rec, err := ParseRecord(tc.Data)
		if err != nil {
			continue // rejected by the data model already: fine
		}
		reached++
		st, err := ValidateRecord(cat, coll, rec, ValidateAuto)
		if err == nil {
			t.Errorf("invalid %q: accepted (status %q)", tc.Name, st)
			continue
		}
		if xe, ok := err.(*Error); !ok || xe.Status != 400 || !strings.HasPrefix(xe.Message, "Invalid example.lexicon.record record: ") {
			t.Errorf("invalid %q: unexpected error %#v", tc.Name, err)
		}
		// skip mode does no lexicon validation
		if st, err := ValidateRecord(cat, coll, rec, ValidateSkip); err != nil || st != "" {
			t.Errorf("invalid %q skip: status %q err %v", tc.Name, st, err)
		}
	}
	if reached < len(invalid)-5 {
		t.Errorf("only %d of %d invalid cases reached lexicon validation", reached, len(invalid))
	}
	if err := CheckRecordKey(cat, coll, "other"); err == nil {
		t.Error("literal:demo accepted rkey 'other'")
	}
}

// readLines returns the non-comment, non-empty lines of a syntax vector file.
func readLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(interopDir, "syntax", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return out
}

// TestInteropParamFormats runs the syntax vectors through query-parameter
// validation for each string format.
func TestInteropParamFormats(t *testing.T) {
	formats := map[string]string{
		"atidentifier": "at-identifier",
		"aturi":        "at-uri",
		"cid":          "cid",
		"datetime":     "datetime",
		"did":          "did",
		"handle":       "handle",
		"nsid":         "nsid",
		"recordkey":    "record-key",
		"tid":          "tid",
		"uri":          "uri",
		"language":     "language",
	}
	for file, format := range formats {
		schema := paramsSchema(t, `{"type":"params","properties":{"p":{"type":"string","format":"`+format+`"}}}`)
		for _, v := range readLines(t, file+"_syntax_valid.txt") {
			if _, err := validateParams(schema, map[string][]string{"p": {v}}); err != nil {
				t.Errorf("%s: valid %q rejected: %v", format, v, err)
			}
		}
		for _, v := range readLines(t, file+"_syntax_invalid.txt") {
			_, err := validateParams(schema, map[string][]string{"p": {v}})
			if err == nil {
				t.Errorf("%s: invalid %q accepted", format, v)
				continue
			}
			if xe := err.(*Error); xe.Status != 400 || !strings.HasPrefix(xe.Message, "p must be a valid ") {
				t.Errorf("%s: unexpected error %#v", format, xe)
			}
		}
	}
}

func paramsSchema(t *testing.T, js string) *lexicon.SchemaParams {
	t.Helper()
	var d lexicon.SchemaDef
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSchema(); err != nil {
		t.Fatal(err)
	}
	p := d.Inner.(lexicon.SchemaParams)
	return &p
}
