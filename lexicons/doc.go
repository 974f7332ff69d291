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
	"sync"

	"github.com/bluesky-social/indigo/atproto/lexicon"
)

// FS holds every embedded schema file, in the upstream folder layout
// (e.g. com/atproto/repo/createRecord.json).
//
//go:embed app chat com site tools
var FS embed.FS

var (
	catOnce sync.Once
	cat     *lexicon.BaseCatalog
	catErr  error
)

// Catalog returns the catalog of all embedded schemas. It is parsed once
// (about 0.1 s) and then shared: callers must treat it as read-only.
func Catalog() (*lexicon.BaseCatalog, error) {
	catOnce.Do(func() {
		c := lexicon.NewBaseCatalog()
		if err := c.LoadEmbedFS(FS); err != nil {
			catErr = err
			return
		}
		cat = c
	})
	return cat, catErr
}
