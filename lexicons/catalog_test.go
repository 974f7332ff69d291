package lexicons

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"sync"
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

// TestLazyMatchesEager: every definition of every embedded file resolves lazily to what the eagerly loaded
// catalog holds (so every file is where its NSID says).
func TestLazyMatchesEager(t *testing.T) {
	eager := lexicon.NewBaseCatalog()
	if err := eager.LoadEmbedFS(FS); err != nil {
		t.Fatal(err)
	}
	lazy := NewLazy(FS)
	n := 0
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		var sf struct {
			ID   string                     `json:"id"`
			Defs map[string]json.RawMessage `json:"defs"`
		}
		if err := json.Unmarshal(b, &sf); err != nil {
			return err
		}
		if want := strings.ReplaceAll(sf.ID, ".", "/") + ".json"; p != want {
			t.Errorf("%s holds %s", p, sf.ID)
		}
		for frag := range sf.Defs {
			ref := sf.ID + "#" + frag
			want, err := eager.Resolve(ref)
			if err != nil {
				return err
			}
			got, err := lazy.Resolve(ref)
			if err != nil {
				t.Errorf("%s: %v", ref, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: lazily %#v, eagerly %#v", ref, got, want)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 800 {
		t.Fatalf("only %d definitions compared", n)
	}
}

func TestLazyUnknownNames(t *testing.T) {
	lazy := NewLazy(FS)
	for _, ref := range []string{"com.example.nope", "com.example.nope#main", "com/atproto/repo/createRecord",
		"com.atproto.repo/createRecord", "../com.atproto.repo.createRecord", "", "#main", "com.atproto.repo.createRecord#nope"} {
		if s, err := lazy.Resolve(ref); err == nil {
			t.Errorf("%q resolved to %s", ref, s.ID)
		}
	}
	n := 0
	lazy.byNSID.Range(func(k, v any) bool { n++; return true })
	if n != 1 { // com.atproto.repo.createRecord, for its missing #nope
		t.Fatalf("%d NSIDs kept after resolving unknown names", n)
	}
	// Concurrent first use of the same and different files.
	lazy = NewLazy(FS)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ref := range []string{"app.bsky.feed.post", "app.bsky.actor.profile", "com.atproto.repo.strongRef"} {
				if _, err := lazy.Resolve(ref); err != nil {
					t.Errorf("goroutine %d: %s: %v", i, ref, err)
				}
			}
		}()
	}
	wg.Wait()
}
