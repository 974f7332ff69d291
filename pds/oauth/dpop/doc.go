// Package dpop verifies DPoP proofs (RFC 9449) the way atproto's OAuth authorization and resource servers use
// them, and issues the rotating server nonces those proofs must carry.
//
// It owns: proof parsing and signature checks (ES256, and ES256K as the reference accepts any key type its JOSE
// library verifies), the htm/htu/iat/exp/ath/nonce checks, the jti replay cache, stateless HMAC nonces and JWK
// thumbprints (RFC 7638). It may not touch HTTP responses (callers turn ErrUseNonce into the 400/401 with a
// DPoP-Nonce header), storage, or token issuance.
//
// Behaviour follows @atproto/oauth-provider's DpopManager: nonces are always required; iat may be up to MaxAge
// (10 s) old plus Leeway (3 min, the nonce lifetime) either side; an htu carrying a query or fragment is compared
// without them; ath is required with an access token and refused without one.
package dpop
