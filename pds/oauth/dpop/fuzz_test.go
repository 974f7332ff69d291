package dpop

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

// FuzzVerify: arbitrary strings as a DPoP proof for a token request and a resource request (seeded with valid
// proofs of both kinds and near misses): no panic, every refusal one of the package's errors, and nothing
// accepted that the seed key did not sign for this method.
func FuzzVerify(f *testing.F) {
	fixed := time.Unix(1_800_000_000, 0)
	// A fixed key: the fuzzer's worker processes run this setup again and must agree with the seeds.
	priv, err := atcrypto.ParsePrivateBytesP256(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	want, err := KeyThumbprint(pub)
	if err != nil {
		f.Fatal(err)
	}
	newVerifier := func() *Verifier {
		c := &clock{t: fixed}
		n := NewNonces([]byte("0123456789abcdef0123456789abcdef"), 0)
		n.Now = c.now
		v := NewVerifier(n)
		v.Now = c.now
		return v
	}
	v := newVerifier()
	t0 := &testing.T{}
	h, c := proofParts(t0, v, priv, "ES256")
	c["jti"] = "seed-1"
	f.Add(sign(t0, priv, h, c))
	c["htu"] = "https://pds.example.com/xrpc/com.atproto.repo.createRecord"
	c["ath"] = AccessTokenHash("access-token")
	resource := sign(t0, priv, h, c)
	f.Add(resource)
	if _, err := newVerifier().Verify(hdr(resource), "POST", "https://pds.example.com/xrpc/com.atproto.repo.createRecord", "access-token"); err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	f.Add(resource[:len(resource)-4])
	f.Add(strings.Replace(resource, ".", "", 1))
	delete(h, "jwk")
	f.Add(sign(t0, priv, h, c))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, proof string) {
		v := newVerifier()
		for _, req := range []struct{ method, url, token string }{
			{"POST", tokenURL, ""},
			{"POST", "https://pds.example.com/xrpc/com.atproto.repo.createRecord", "access-token"},
		} {
			p, err := v.Verify(hdr(proof), req.method, req.url, req.token)
			if err != nil {
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUseNonce) && !errors.Is(err, ErrReplay) && !errors.Is(err, ErrMissing) {
					t.Fatalf("refusal is none of the package's errors: %v", err)
				}
				continue
			}
			if p.JKT != want || p.HTM != req.method {
				t.Fatalf("accepted a proof not made by the seed key for %s: %+v", req.method, p)
			}
		}
	})
}
