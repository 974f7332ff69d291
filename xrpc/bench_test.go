package xrpc

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/labstack/echo/v4"
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

// getRecordParams is the parameter schema of com.atproto.repo.getRecord.
func getRecordParams(b *testing.B) *lexicon.SchemaParams {
	cat, err := lexicons.Catalog()
	if err != nil {
		b.Fatal(err)
	}
	s, err := cat.Resolve("com.atproto.repo.getRecord")
	if err != nil {
		b.Fatal(err)
	}
	return s.Def.(lexicon.SchemaQuery).Parameters
}

// BenchmarkValidateParams: getRecord's query parameters (at-identifier, nsid,
// record-key) checked against its lexicon, as on every getRecord.
func BenchmarkValidateParams(b *testing.B) {
	p := getRecordParams(b)
	for _, repo := range []string{"did:plc:ewvi7nxzyoun6zhxrhs64oiz", "alice.test"} {
		q := map[string][]string{"repo": {repo}, "collection": {"app.bsky.feed.post"}, "rkey": {"3jzfcijpj2z2a"}}
		b.Run("repo="+repo[:4], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := validateParams(p, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRouterGetRecord: the whole XRPC layer of a getRecord (echo routing,
// method NSID, parameter validation) with a handler that does nothing.
func BenchmarkRouterGetRecord(b *testing.B) {
	cat, err := lexicons.Catalog()
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	r := NewRouter(e, cat)
	r.Query("com.atproto.repo.getRecord", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	req := httptest.NewRequest(http.MethodGet, "/xrpc/com.atproto.repo.getRecord?repo=did:plc:ewvi7nxzyoun6zhxrhs64oiz"+
		"&collection=app.bsky.feed.post&rkey=3jzfcijpj2z2a", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.code = 0
		e.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
	}
}

// discardWriter is a reusable http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkCheckRecordKey: rkey syntax and key type of a post write.
func BenchmarkCheckRecordKey(b *testing.B) {
	cat, err := lexicons.Catalog()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckRecordKey(cat, "app.bsky.feed.post", "3jzfcijpj2z2a"); err != nil {
			b.Fatal(err)
		}
	}
}
