// Package scope decides what a granted OAuth scope allows, following the atproto permission spec and the
// matching rules of @atproto/oauth-scopes (ScopePermissionsTransition): repo, blob, rpc, account and identity
// permissions, the transition:* scopes, and include:<nsid> permission sets resolved through Lexicon resolution.
//
// Parsing uses indigo's atproto/auth permission parser; indigo parses but does not match, so matching lives here.
// It owns: scope parsing and matching, permission-set expansion (with the namespace-authority rule), a caching
// Lexicon permission-set resolver, and plain-words descriptions for consent pages. It may not touch HTTP
// handlers, tokens or storage: callers ask Allows* and map a refusal to their own error.
package scope
