package pds

import (
	"testing"
	"time"
)

// BenchmarkParseAccessToken: verifying a session access JWT (HS256), done on every authenticated request.
func BenchmarkParseAccessToken(b *testing.B) {
	s := &Server{cfg: &Config{JWTSecret: []byte("bench-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}}
	tok, err := s.accessToken("did:plc:ewvi7nxzyoun6zhxrhs64oiz", ScopeAccess, time.Now())
	if err != nil {
		b.Fatal(err)
	}
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
	s := &Server{cfg: &Config{JWTSecret: []byte("bench-secret-0123456789abcdef"), ServiceDID: "did:web:localhost"}}
	tok, err := s.accessToken("did:plc:ewvi7nxzyoun6zhxrhs64oiz", ScopeAccess, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		did, _, err := s.accessClaims(tok)
		if err != nil || did == "" {
			b.Fatal(err)
		}
	}
}
