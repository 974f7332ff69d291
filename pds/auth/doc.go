// Package auth answers "who is calling, with which permissions" for every request: session tokens (access and
// refresh JWTs, the verified-token cache), app passwords and their scopes, the operator's Basic credentials,
// and incoming service-auth tokens.
//
// The seam is [Verifier.Authenticate]: it turns a request into a [Caller]. Handlers read the caller with
// [CallerOf] and never look at credentials themselves, so a second credential kind (OAuth DPoP tokens, through
// [Verifier.OAuth]) plugs in here without touching them.
//
// It owns no storage: refresh tokens and app passwords live in the account store (through the narrow [Store]
// interface), and takedowns are asked of the accounts package ([TakedownChecker]). It may not reach into the
// write path, blobs, the firehose or the proxy.
package auth
