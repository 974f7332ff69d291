// Package lexicons embeds the AT Protocol Lexicon schemas (JSON) the PDS
// validates against, and exposes them as one lazily loaded, shared catalog.
//
// Provenance: the JSON files under app/, chat/, com/, site/ and tools/ are an
// unmodified copy of the lexicons/ folder of github.com/bluesky-social/indigo
// at module version v0.0.0-20260605210604-af2fec94f34c (377 schema files:
// com.atproto 95, app.bsky 147, chat.bsky 53, tools.ozone 75, site.standard 6,
// com.germnetwork 1). indigo is dual-licensed MIT / Apache-2.0; see LICENSE in
// this directory for the full texts. To update, copy the folder from a newer
// indigo module version and adjust the version above.
package lexicons

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/bluesky-social/indigo/atproto/lexicon"
)

// FS holds every embedded schema file, in the upstream folder layout
// (e.g. com/atproto/repo/createRecord.json).
//
//go:embed app chat com site tools
var FS embed.FS

// NSIDs lists the NSID of every embedded schema file (methods, records and definitions alike), from the file
// names alone: nothing is parsed.
func NSIDs() []string {
	var out []string
	fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			out = append(out, strings.ReplaceAll(strings.TrimSuffix(p, ".json"), "/", "."))
		}
		return nil
	})
	return out
}

var (
	catOnce sync.Once
	cat     *Lazy
)

// Catalog returns the catalog of all embedded schemas, shared by all callers, who must treat what it resolves
// as read-only. Each schema file is parsed when a reference into it is first resolved: a server uses a
// fraction of the 377 files, and parsing them all costs 0.1 s and 0.7 MB of heap at start.
func Catalog() (*Lazy, error) {
	catOnce.Do(func() { cat = NewLazy(FS) })
	return cat, nil
}

// Lazy is a lexicon.Catalog over schema files laid out by NSID (a.b.cName in a/b/cName.json), each parsed on
// first use. Safe for concurrent use; resolving a loaded schema takes no lock.
type Lazy struct {
	files fs.FS
	mu    sync.Mutex // serializes loading
	// files read, by NSID: a catalog of that file's schemas, or the error that kept it out. Only NSIDs that
	// have a file are kept, so names from requests do not grow it.
	byNSID sync.Map
}

// NewLazy returns a catalog reading the schema files of files.
func NewLazy(files fs.FS) *Lazy { return &Lazy{files: files} }

// Resolve looks up a reference (an NSID with an optional #fragment; #main when none).
func (c *Lazy) Resolve(ref string) (*lexicon.Schema, error) {
	nsid, _, _ := strings.Cut(ref, "#")
	v, ok := c.byNSID.Load(nsid)
	if !ok {
		v = c.load(nsid)
	}
	if err, ok := v.(error); ok {
		return nil, err
	}
	return v.(*lexicon.BaseCatalog).Resolve(ref)
}

// load reads nsid's file and returns its catalog or an error.
func (c *Lazy) load(nsid string) any {
	notFound := fmt.Errorf("schema not found in catalog: %s", nsid) // what lexicon.BaseCatalog says
	if nsid == "" || strings.ContainsAny(nsid, "/\\") {
		return notFound // the file name is the NSID with dots for slashes
	}
	b, err := fs.ReadFile(c.files, strings.ReplaceAll(nsid, ".", "/")+".json")
	if err != nil {
		return notFound
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.byNSID.Load(nsid); ok {
		return v // loaded meanwhile
	}
	var v any
	var sf lexicon.SchemaFile
	cat := lexicon.NewBaseCatalog()
	if err = json.Unmarshal(b, &sf); err == nil && sf.ID != nsid {
		err = errors.New("the file's id is " + sf.ID)
	}
	if err == nil {
		err = cat.AddSchemaFile(sf)
	}
	if v = cat; err != nil {
		v = fmt.Errorf("lexicon %s: %w", nsid, err)
	}
	c.byNSID.Store(nsid, v)
	return v
}
