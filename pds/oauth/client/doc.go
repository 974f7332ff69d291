// Package client resolves and checks atproto OAuth clients for the authorization server: loopback development
// clients (client_id http://localhost?...) built in memory, and discoverable clients whose client_id is an https
// URL serving their metadata document, fetched through the caller's (SSRF-guarded) HTTP client, size- and
// time-limited, validated as the atproto OAuth spec and @atproto/oauth-provider do, and cached.
//
// It also authenticates a client at the PAR and token endpoints (none, or private_key_jwt assertions signed by a
// key from the client's jwks / jwks_uri) and answers whether a redirect URI or a requested scope is the client's.
//
// It may not touch storage, HTTP responses or the authorization flow itself; it knows nothing about accounts.
package client
