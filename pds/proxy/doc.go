// Package proxy makes the calls this PDS forwards to other services on behalf of its accounts: XRPC proxying
// (the router's fallback: atproto-proxy header or the namespace's configured service), the outbound HTTP client
// behind the SSRF guard, the service-auth tokens those calls carry, getFeed (a token for the feed generator),
// and read-after-write (the account's own writes the AppView has not seen yet, patched into its answers).
//
// It reads accounts (signing keys) and repositories (the newer records) but never writes them. Who is calling
// comes in through Deps (Authenticate, CallerDID), and DID resolution through Deps.ResolveDID: sessions and
// identity caches belong to other packages. Its settings (Config) are read by package pds.
package proxy
