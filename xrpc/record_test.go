package xrpc

import (
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/pdsgo/pds/lexicons"
)

func TestParseRecordDataModel(t *testing.T) {
	ok := []string{
		`{"$type":"com.example.a","n":123.0}`,
		`{"$type":"com.example.a","n":9007199254740991,"m":-9007199254740991}`,
		`{"$type":"com.example.a","n":1e3}`,
		`{"$type":"com.example.a","s":"pair \ud83d\ude00 ok"}`,
		`{"$type":"com.example.a","b":{"$type":"blob","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"mimeType":"image/jpeg","size":10}}`,
		` {"$type":"com.example.a"} ` + "\n",
	}
	for _, s := range ok {
		if _, err := ParseRecord([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		`{"$type":"com.example.a","n":1.5}`:                  "floating-point",
		`{"$type":"com.example.a","n":9007199254740992}`:     "out of range",
		`{"$type":"com.example.a","n":-9007199254740992}`:    "out of range",
		`{"$type":"com.example.a","n":1e400}`:                "out of range",
		`{"$type":"com.example.a","a":1,"a":2}`:              "duplicate",
		`{"$type":"com.example.a"} {}`:                       "malformed",
		`{"$type":"com.example.a"`:                           "malformed",
		`["$type"]`:                                          "JSON object",
		`{"n":1}`:                                            "$type",
		`{"$type":""}`:                                       "$type",
		`{"$type":7}`:                                        "$type",
		"{\"$type\":\"com.example.a\",\"s\":\"\xc3\x28\"}":   "UTF-8",
		`{"$type":"com.example.a","s":"\udc00"}`:             "surrogate",
		`{"$type":"com.example.a","s":"\ud800x"}`:            "surrogate",
		`{"$type":"com.example.a","l":{"$link":"bafyfake"}}`: "CID",
		`{"$type":"com.example.a","l":{"$bytes":"!!"}}`:      "$byte",
		`{"$type":"com.example.a","b":{"cid":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity","mimeType":"image/png"}}`:                                     "legacy",
		`{"$type":"com.example.a","b":{"$type":"blob","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"mimeType":"image/jpeg","size":-1}}`: "negative",
		`{"$type":"com.example.a","d":` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `}`:                                                                      "nested",
	}
	for s, want := range bad {
		_, err := ParseRecord([]byte(s))
		if err == nil {
			t.Errorf("%.80s: accepted", s)
			continue
		}
		xe, isX := err.(*Error)
		if !isX || xe.Status != 400 || !strings.Contains(xe.Message, want) {
			t.Errorf("%.80s: got %v, want 400 containing %q", s, err, want)
		}
	}
}

func TestParseRecordEncodes(t *testing.T) {
	rec, err := ParseRecord([]byte(`{"$type":"com.example.a","n":123.0,"b":{"$type":"blob","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"mimeType":"image/jpeg","size":10}}`))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Type != "com.example.a" {
		t.Errorf("Type %q", rec.Type)
	}
	if _, isInt := rec.Value["n"].(int64); !isInt {
		t.Errorf("123.0 not stored as integer: %T", rec.Value["n"])
	}
	back, err := atdata.UnmarshalCBOR(rec.CBOR)
	if err != nil || back["n"] != int64(123) {
		t.Errorf("CBOR round trip: %v %#v", err, back)
	}
	if p := rec.CID.Prefix(); p.Version != 1 || p.Codec != 0x71 || p.MhType != 0x12 {
		t.Errorf("CID prefix %+v", p)
	}
	if bl := rec.Blobs(); len(bl) != 1 || bl[0].Size != 10 || bl[0].MimeType != "image/jpeg" {
		t.Errorf("Blobs: %+v", bl)
	}
	// same data, different key order and spacing -> same CID
	rec2, err := ParseRecord([]byte(`{ "b":{"size":10,"mimeType":"image/jpeg","ref":{"$link":"bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},"$type":"blob"}, "n":123, "$type":"com.example.a"}`))
	if err != nil || !rec2.CID.Equals(rec.CID) {
		t.Errorf("CID not canonical: %v %s %s", err, rec.CID, rec2.CID)
	}
}

func TestValidateRecordModes(t *testing.T) {
	cat, err := lexicons.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	post, err := ParseRecord([]byte(`{"$type":"app.bsky.feed.post","text":"hi","createdAt":"2024-05-01T12:00:00.000Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	badPost, _ := ParseRecord([]byte(`{"$type":"app.bsky.feed.post","text":"hi"}`))
	unknown, _ := ParseRecord([]byte(`{"$type":"com.example.thing","whatever":true}`))
	notRecord, _ := ParseRecord([]byte(`{"$type":"com.atproto.repo.createRecord"}`))

	check := func(name string, st string, err error, wantSt, wantErr string) {
		t.Helper()
		if wantErr == "" {
			if err != nil || st != wantSt {
				t.Errorf("%s: status %q err %v, want %q", name, st, err, wantSt)
			}
			return
		}
		xe, ok := err.(*Error)
		if !ok || xe.Status != 400 || !strings.Contains(xe.Message, wantErr) {
			t.Errorf("%s: err %v, want 400 containing %q", name, err, wantErr)
		}
	}
	st, err := ValidateRecord(cat, "app.bsky.feed.post", post, ValidateAuto)
	check("auto known", st, err, "valid", "")
	st, err = ValidateRecord(cat, "app.bsky.feed.post", post, ValidateRequire)
	check("require known", st, err, "valid", "")
	st, err = ValidateRecord(cat, "app.bsky.feed.post", post, ValidateSkip)
	check("skip known", st, err, "", "")
	st, err = ValidateRecord(cat, "app.bsky.feed.post", badPost, ValidateAuto)
	check("auto invalid", st, err, "", "Invalid app.bsky.feed.post record: ")
	st, err = ValidateRecord(cat, "app.bsky.feed.post", badPost, ValidateSkip)
	check("skip invalid", st, err, "", "")
	st, err = ValidateRecord(cat, "com.example.thing", unknown, ValidateAuto)
	check("auto unknown", st, err, "unknown", "")
	st, err = ValidateRecord(cat, "com.example.thing", unknown, ValidateRequire)
	check("require unknown", st, err, "", "Lexicon not found: com.example.thing")
	st, err = ValidateRecord(cat, "com.example.thing", unknown, ValidateSkip)
	check("skip unknown", st, err, "", "")
	st, err = ValidateRecord(cat, "app.bsky.feed.like", post, ValidateSkip)
	check("type mismatch", st, err, "", "Invalid $type: expected app.bsky.feed.like, got app.bsky.feed.post")
	st, err = ValidateRecord(cat, "com.atproto.repo.createRecord", notRecord, ValidateAuto)
	check("not a record lexicon", st, err, "", "does not define a record type")
	st, err = ValidateRecord(cat, "bad collection", post, ValidateAuto)
	check("bad collection", st, err, "", "Invalid collection")

	if ModeFromBool(nil) != ValidateAuto {
		t.Error("nil -> auto")
	}
	tr, fa := true, false
	if ModeFromBool(&tr) != ValidateRequire || ModeFromBool(&fa) != ValidateSkip {
		t.Error("ModeFromBool")
	}
}

func TestCheckRecordKey(t *testing.T) {
	cat, err := lexicons.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		coll, rkey string
		ok         bool
	}{
		{"app.bsky.feed.post", "3jzfcijpj2z2a", true},
		{"app.bsky.feed.post", "self", false},
		{"app.bsky.actor.profile", "self", true},
		{"app.bsky.actor.profile", "3jzfcijpj2z2a", false},
		{"app.bsky.feed.generator", "any-key_ok", true}, // key "any"
		{"com.example.thing", "Any:Valid~key", true},
		{"com.example.thing", ".", false},
		{"com.example.thing", "..", false},
		{"com.example.thing", "has/slash", false},
		{"com.example.thing", "", false},
	}
	for _, tc := range cases {
		err := CheckRecordKey(cat, tc.coll, tc.rkey)
		if (err == nil) != tc.ok {
			t.Errorf("%s/%q: err %v, want ok=%v", tc.coll, tc.rkey, err, tc.ok)
		}
	}
}
