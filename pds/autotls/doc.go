// Package autotls serves the PDS over HTTPS with certificates from an ACME CA (Let's Encrypt by default), for
// PDS_TLS=auto: a server on a domain with no reverse proxy in front.
//
// Certificates are requested on demand, at the first TLS handshake for a name, and only for names the host
// policy accepts (the PDS's hostname and the handles of hosted accounts, pds.Server.HostsName), so a scanner
// naming arbitrary hosts cannot make the server request certificates. Challenges: tls-alpn-01 on the HTTPS
// listener and http-01 on the HTTP listener, which otherwise redirects to HTTPS. Certificates and the ACME
// account key are cached in a directory (<data>/certs) and renewed before they expire.
//
// It uses golang.org/x/crypto/acme/autocert: its HostPolicy is exactly the on-demand decision, it is part of
// the Go project's x/crypto (already a dependency), and it adds no logging or storage framework. certmagic does
// more (OCSP stapling, distributed locking of the cache for clusters, ZeroSSL fallback) that a single-machine
// PDS does not need, at the cost of zap and a dozen further modules.
//
// It owns the ACME client, the certificate cache and the two listeners' handlers; it knows nothing of
// accounts (it asks the host policy) and serves whatever handler it is given.
package autotls
