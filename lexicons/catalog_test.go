package lexicons

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
)

func TestCatalogLoads(t *testing.T) {
	cat, err := Catalog()
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	again, _ := Catalog()
	if again != cat {
		t.Fatal("Catalog is not cached")
	}

	s, err := cat.Resolve("app.bsky.feed.post")
	if err != nil {
		t.Fatalf("resolve post: %v", err)
	}
	rec, ok := s.Def.(lexicon.SchemaRecord)
	if !ok || rec.Key != "tid" {
		t.Fatalf("app.bsky.feed.post: want record with key tid, got %#v", s.Def)
	}

	s, err = cat.Resolve("com.atproto.repo.createRecord")
	if err != nil {
		t.Fatalf("resolve createRecord: %v", err)
	}
	proc, ok := s.Def.(lexicon.SchemaProcedure)
	if !ok || proc.Input == nil || proc.Input.Encoding != "application/json" {
		t.Fatalf("createRecord: want procedure with JSON input, got %#v", s.Def)
	}

	if _, err := cat.Resolve("app.bsky.actor.profile"); err != nil {
		t.Fatalf("resolve profile: %v", err)
	}
	if _, err := cat.Resolve("com.example.nope"); err == nil {
		t.Fatal("unknown NSID resolved")
	}
}

func TestEmbeddedFileCount(t *testing.T) {
	n := 0
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 370 {
		t.Fatalf("only %d schema files embedded", n)
	}
}
