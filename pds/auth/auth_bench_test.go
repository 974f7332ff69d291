package auth

import (
	"testing"
	"time"
)

// benchAccessToken returns a server configured to verify tokens and an access token it issued.
func benchAccessToken(b *testing.B) (*Verifier, string) {
	s := tokenTestServer()
	tok, err := s.accessToken("did:plc:ewvi7nxzyoun6zhxrhs64oiz", ScopeAccess, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return s, tok
}

// BenchmarkParseAccessToken: verifying a session access JWT (HS256), done on a session's first request.
func BenchmarkParseAccessToken(b *testing.B) {
	s, tok := benchAccessToken(b)
	b.ReportAllocs()
	for b.Loop() {
		c, err := s.parseToken(tok, typAccess)
		if err != nil || c.Subject == "" {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessClaims: the same check for a token seen before (verifiedTokens), as a session's later
// requests make it.
func BenchmarkAccessClaims(b *testing.B) {
	s, tok := benchAccessToken(b)
	b.ReportAllocs()
	for b.Loop() {
		did, _, err := s.accessClaims(tok)
		if err != nil || did == "" {
			b.Fatal(err)
		}
	}
}
