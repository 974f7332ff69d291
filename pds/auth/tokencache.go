package auth

import (
	"sync"
	"time"
)

// verifiedTokens remembers the access tokens whose signature and claims were checked, until they expire, so
// that a session's later requests skip golang-jwt (base64, HMAC and two JSON decodes: ~3.5% of the server's
// CPU under createRecord from 8 clients). Only access tokens: they carry no server-side state (a takedown is
// checked on every request, after this), while refresh tokens are checked against their revocation in the
// database. An entry is keyed by the whole token, so only the exact bytes once verified match it.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	did, scope string
	exp        time.Time
}

// maxVerifiedTokens bounds the cache (~0.5 KB an entry). A full cache drops its expired entries, then
// arbitrary ones: a token that falls out is verified again on its next use.
const maxVerifiedTokens = 1024

// get returns the claims of raw if it was verified before and has not expired at now.
func (v *verifiedTokens) get(raw string, now time.Time) (verifiedToken, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.m[raw]
	if !ok {
		return verifiedToken{}, false
	}
	if !now.Before(t.exp) { // as golang-jwt: valid while now < exp
		delete(v.m, raw)
		return verifiedToken{}, false
	}
	return t, true
}

// put remembers a token just verified.
func (v *verifiedTokens) put(raw string, t verifiedToken, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]verifiedToken)
	}
	if len(v.m) >= maxVerifiedTokens {
		for k, old := range v.m {
			if !now.Before(old.exp) {
				delete(v.m, k)
			}
		}
		for k := range v.m {
			if len(v.m) < maxVerifiedTokens {
				break
			}
			delete(v.m, k)
		}
	}
	v.m[raw] = t
}

// accessClaims verifies an access token (parseToken), or finds it verified before and not yet expired.
func (v *Verifier) accessClaims(raw string) (did, scope string, err error) {
	now := time.Now()
	if t, ok := v.tokens.get(raw, now); ok {
		return t.did, t.scope, nil
	}
	claims, err := v.parseToken(raw, typAccess)
	if err != nil {
		return "", "", err
	}
	if claims.ExpiresAt != nil { // parseToken requires it
		v.tokens.put(raw, verifiedToken{did: claims.Subject, scope: claims.Scope, exp: claims.ExpiresAt.Time}, now)
	}
	return claims.Subject, claims.Scope, nil
}
