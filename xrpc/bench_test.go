package xrpc

import (
	"testing"

	"github.com/pdsgo/pds/lexicons"
)

// benchPost is a typical post as a client sends it: text, a facet, a language.
var benchPost = []byte(`{"$type":"app.bsky.feed.post","text":"hello @alice.test, a typical short post with a mention",` +
	`"createdAt":"2026-11-26T00:00:00.000Z","langs":["en"],"facets":[{"index":{"byteStart":6,"byteEnd":17},` +
	`"features":[{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz"}]}]}`)

// BenchmarkParseRecord: record JSON -> data-model checks -> DAG-CBOR -> CID (every record write).
func BenchmarkParseRecord(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(benchPost); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateRecord: lexicon validation of a parsed post.
func BenchmarkValidateRecord(b *testing.B) {
	cat, err := lexicons.Catalog()
	if err != nil {
		b.Fatal(err)
	}
	rec, err := ParseRecord(benchPost)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValidateRecord(cat, "app.bsky.feed.post", rec, ModeFromBool(nil)); err != nil {
			b.Fatal(err)
		}
	}
}
