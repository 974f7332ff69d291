package xrpc

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// generalJSON is what the general path makes of a record: atdata's maps, encoded as echo encodes a response
// (encoding/json with HTML escaping).
func generalJSON(t testing.TB, cbor []byte) ([]byte, error) {
	t.Helper()
	val, err := atdata.UnmarshalCBOR(cbor)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(val); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	c, err := cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_256).Sum([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomValue builds a data-model value: strings meant to test escaping and key order, integers at the
// edges, links, bytes, blobs, nested objects and arrays.
func randomValue(t testing.TB, r *rand.Rand, depth int) any {
	strs := []string{"", "plain", "<b>&amp;</b>", "quote\" back\\slash", "ctl\x00\x01\x1f\x7f", "tab\tnl\nret\r\b\f",
		"é ü 日本語 🙂", "line\u2028para\u2029", "\ufffd", strings.Repeat("long ", 100)}
	n := 7
	if depth > 3 {
		n = 4
	}
	switch r.IntN(n) {
	case 0:
		return strs[r.IntN(len(strs))]
	case 1:
		return []int64{0, 1, -1, 23, 24, 255, 256, -24, -25, 65535, 65536, 1 << 32, -(1 << 40), 9007199254740991, -9007199254740991}[r.IntN(15)]
	case 2:
		return []any{true, false, nil}[r.IntN(3)]
	case 3:
		if r.IntN(2) == 0 {
			return atdata.CIDLink(testCID(t, fmt.Sprint(r.Int())))
		}
		return atdata.Bytes([]byte(strs[r.IntN(len(strs))]))
	case 4:
		return atdata.Blob{Ref: atdata.CIDLink(testCID(t, "blob")), MimeType: []string{"image/png", "text/<html>"}[r.IntN(2)], Size: r.Int64N(1 << 20)}
	case 5:
		arr := make([]any, r.IntN(4))
		for i := range arr {
			arr[i] = randomValue(t, r, depth+1)
		}
		return arr
	default:
		return randomObject(t, r, depth+1)
	}
}

func randomObject(t testing.TB, r *rand.Rand, depth int) map[string]any {
	keys := []string{"text", "a", "B", "aa", "ab", "é", "Z", "createdAt", "<key>", "key\"q", "$type", "_x", "1", "embed"}
	obj := map[string]any{}
	for range r.IntN(6) {
		k := keys[r.IntN(len(keys))]
		if k == "$type" {
			obj[k] = []string{"app.bsky.feed.post", "com.example.<x>"}[r.IntN(2)]
			continue
		}
		obj[k] = randomValue(t, r, depth)
	}
	return obj
}

// TestRecordJSONMatchesGeneralPath: the fast transcoder writes exactly what the general path writes, for
// random records and for the shapes it hands to the general path.
func TestRecordJSONMatchesGeneralPath(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for i := range 3000 {
		obj := randomObject(t, r, 0)
		cbor, err := atdata.MarshalCBOR(obj)
		if err != nil {
			t.Fatal(err)
		}
		want, err := generalJSON(t, cbor)
		if err != nil {
			t.Fatalf("record %d: general path: %v", i, err)
		}
		got, err := RecordJSON(cbor)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
		if _, ok := transcodeRecord(nil, cbor); ok {
			fast++
		}
	}
	if fast != 3000 {
		t.Fatalf("fast path took %d of 3000 data-model records", fast)
	}

	// Hand-made CBOR: the fast path declines, the answer (or error) is the general path's.
	cases := map[string]string{
		"float":              "a1 6161 fb3ff8000000000000",               // {"a": 1.5}
		"integral float":     "a1 6161 fb4000000000000000",               // {"a": 2.0}
		"indefinite map":     "bf 6161 f5 ff",                            // {_ "a": true}
		"non-minimal int":    "a1 6161 1805",                             // {"a": 5} in two bytes
		"other tag":          "a1 6161 c11a5f5e1000",                     // {"a": 1(1600000000)}
		"undefined":          "a1 6161 f7",                               // {"a": undefined}
		"top-level array":    "81 01",                                    // [1]
		"$link key":          "a1 65246c696e6b 63616263",                 // {"$link": "abc"}
		"empty $type":        "a1 652474797065 60",                       // {"$type": ""}
		"non-string $type":   "a1 652474797065 01",                       // {"$type": 1}
		"int key":            "a1 01 01",                                 // {1: 1}
		"trailing bytes":     "a0 00",                                    // {} 0
		"truncated":          "a2 6161 01",                               // {"a": 1, ...
		"huge uint":          "a1 6161 1bffffffffffffffff",               // {"a": 2^64-1}
		"legacy blob":        "a2 63636964 6162 686d696d6554797065 6174", // {"cid": "b", "mimeType": "t"}
		"duplicate keys":     "a2 6161 01 6161 02",                       // {"a": 1, "a": 2}
		"invalid utf-8":      "a1 6161 62fffe",                           // {"a": "\xff\xfe"}
		"$bytes key":         "a1 66246279746573 6441514944",             // {"$bytes": "AQID"}
		"blob missing field": "a2 652474797065 64626c6f62 6473697a65 01", // {"$type": "blob", "size": 1}
	}
	for name, h := range cases {
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := transcodeRecord(nil, b); ok {
			t.Errorf("%s: the fast path took it", name)
		}
		want, wantErr := generalJSON(t, b)
		got, err := RecordJSON(b)
		if (err != nil) != (wantErr != nil) || err == nil && !bytes.Equal(got, want) {
			t.Errorf("%s: got %s, %v; want %s, %v", name, got, err, want, wantErr)
		}
	}
}

func BenchmarkRecordJSON(b *testing.B) {
	obj := map[string]any{"$type": "app.bsky.feed.post", "text": "a typical short post, with a link <https://example.com>",
		"createdAt": "2026-11-26T00:00:00.000Z", "langs": []any{"en"},
		"reply": map[string]any{"root": map[string]any{"uri": "at://did:plc:abc/app.bsky.feed.post/3k", "cid": "bafyreib"},
			"parent": map[string]any{"uri": "at://did:plc:abc/app.bsky.feed.post/3k", "cid": "bafyreib"}}}
	cbor, err := atdata.MarshalCBOR(obj)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("general", func(b *testing.B) {
		for b.Loop() {
			if _, err := generalJSON(b, cbor); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("transcode", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = AppendRecordJSON(buf[:0], cbor)
		}
	})
}
