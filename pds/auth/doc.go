// Package auth answers "who is calling, with which permissions" for every request: session tokens (access and
// refresh JWTs, the verified-token cache), app passwords and their scopes, the operator's Basic credentials,
// and incoming service-auth tokens.
//
// The seam is [Verifier.Authenticate]: it turns a request into a [Caller]. Handlers read the caller with
// [CallerOf] and never look at credentials themselves. OAuth access tokens ("Authorization: DPoP") come in
// through [Verifier.OAuth] ([OAuthVerifier], over pds/oauth's VerifyAccess): such a Caller carries the granted
// permissions, and the route table and handlers state what each method needs with the Caller's Require*
// checks (and the [Authorize] middlewares), which let legacy callers through unchanged.
//
// It owns no storage: refresh tokens and app passwords live in the account store (through the narrow [Store]
// interface), and takedowns are asked of the accounts package ([TakedownChecker]). It may not reach into the
// write path, blobs, the firehose or the proxy.
package auth
